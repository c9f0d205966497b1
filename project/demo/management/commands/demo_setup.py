from django.core.management.base import BaseCommand

from project.demo.setup import ADMIN_PASSWORD, ADMIN_USER, DEMO_KEYS, load_demo_data


class Command(BaseCommand):
    help = "Load the catalogue and the demo's development-only tenants, keys and admin user."

    def handle(self, *args, **options):
        load_demo_data()
        out = self.stdout.write
        out(self.style.SUCCESS("Demo data loaded (development-only credentials):"))
        out(f"  admin:         http://127.0.0.1:8000/admin/  {ADMIN_USER} / {ADMIN_PASSWORD}")
        for tier, (_name, secret) in DEMO_KEYS.items():
            out(f"  {tier} API key: {secret}")
        out("  OAuth client:  demo-client / demo-secret at /connect/token")
        out("  OAuth client:  dot-client / dot-secret at /o/token/ (django-oauth-toolkit)")
        out("Try:")
        key = DEMO_KEYS["free"][1]
        out(f"  curl -i -H 'Authorization: Bearer {key}' http://127.0.0.1:8000/v1/status")
        out(f"  curl -i -X POST -H 'X-API-Key: {key}' http://127.0.0.1:8000/acp/admin/ping")
        out(
            "  curl -i -X POST -d client_id=demo-client -d client_secret=wrong "
            "http://127.0.0.1:8000/connect/token"
        )
