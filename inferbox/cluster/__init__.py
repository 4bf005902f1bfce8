"""The real platform on Kubernetes: a Kind cluster inferbox creates, or an existing cluster.

The installer reads the pinned versions file, turns it into an ordered plan of steps (commands to
run, objects to apply, conditions to wait on), and runs that plan. The same plan is printed by
``inferbox up --platform kind --dry-run``. ``target`` implements the platform contract on top.
"""
