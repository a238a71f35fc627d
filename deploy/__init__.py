"""Deployment helpers: local infrastructure, process running and topic set-up."""
