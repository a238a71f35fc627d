"""The five Sada services, each its own process: intake, router, campaigns, notifier, archive."""
