"""The demo data generator: the battery model, its labelled anomalies, the column mapping
onto the catalogue, the range writer and the live loop."""
