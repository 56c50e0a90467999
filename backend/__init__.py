"""The Creditdesk backend: sells credit packs through Stripe Checkout and keeps the credit ledger."""

__version__ = "0.1.0"
