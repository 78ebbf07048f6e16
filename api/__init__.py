"""HTTP adapters: parse the request, call one service, render JSON/CSV or problem+json."""
