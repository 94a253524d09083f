"""The web console: a static single-page app served at ``/`` that speaks only the public API."""
