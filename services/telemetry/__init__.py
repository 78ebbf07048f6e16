"""Operating data as the API and the pages serve it: time ranges, rows and pages, bucketed
statistics, chart series, CSV export, snapshots, discovery and de-identification."""
