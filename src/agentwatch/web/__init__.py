"""The dashboard: a single-page app in plain HTML, CSS and JavaScript modules, served by the API server."""
