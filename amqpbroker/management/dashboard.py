"""The read-only dashboard page served at ``/``: plain HTML and JS over the API."""

PAGE = "<!doctype html><title>amqpbroker</title>"
