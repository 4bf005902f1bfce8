"""Run reports: report.json (versioned), junit.xml, summary.html and component logs."""
