"""Safety indices and forecasts (the formulas are stated in each module).

* `sos` State of Safety per sample, seven factors from the protection map;
* `exsos` the fuzzy Extended SoS every 10 minutes (rack and bank);
* `socp` State of Cell Position (which cell keeps being the extreme one);
* `soh` daily mean SoH, SoL and its long-horizon forecast;
* `forecast` 10-minute and 1-day forecasts with rolling-origin backtests;
* `tables` the app-database tables, `writes` the bulk inserts, `results` the reads behind
  the API;
* `jobs` the incremental job that computes everything (`flask --app app ess analyze`):
  `bookkeeping` (watermarks, versions), `inputs` (site reads), `index_tasks` and
  `forecast_tasks` (the five tasks).

Importing this package does nothing heavy: Prophet is imported where a model is fitted.
"""
