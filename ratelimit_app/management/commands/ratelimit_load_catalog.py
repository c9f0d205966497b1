from django.core.management.base import BaseCommand

from ratelimit_app.catalog import load_catalog


class Command(BaseCommand):
    help = "Load the default endpoint groups, tiers, limits and token ban rule (idempotent)."

    def handle(self, *args, **options):
        count = load_catalog()
        self.stdout.write(self.style.SUCCESS(f"Catalogue loaded: {count} tier limits."))
