"""Integrations with third-party packages (imported only by projects that use them)."""
