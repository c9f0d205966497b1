from django.core.management.base import BaseCommand, CommandError

from ratelimit_app.bans.rows import lift_bans
from ratelimit_app.models import CredentialBan


class Command(BaseCommand):
    help = "Lift credential bans: every pair of a client_id, or one pair by fingerprint."

    def add_arguments(self, parser):
        group = parser.add_mutually_exclusive_group(required=True)
        group.add_argument("--client-id", help="Lift the bans of all pairs with this client_id.")
        group.add_argument("--fingerprint", help="Lift the ban of one pair (a prefix will do).")

    def handle(self, *args, **options):
        bans = CredentialBan.objects.filter(lifted_at__isnull=True)
        if options["client_id"] is not None:
            bans = bans.filter(client_id=options["client_id"])
        else:
            prefix = options["fingerprint"].strip().lower()
            if len(prefix) < 8:
                raise CommandError("Give at least 8 characters of the fingerprint.")
            bans = bans.filter(fingerprint__startswith=prefix)
        lifted = lift_bans(bans)
        self.stdout.write(self.style.SUCCESS(f"Lifted {len(lifted)} ban(s)."))
