"""Run reports: report.json (versioned), junit.xml, summary.html, summary.md, and the run's logs;
``report diff`` between runs."""
