from django.core.management.base import BaseCommand, CommandError

from ratelimit_app.bans.rows import lift_bans
from ratelimit_app.models import BanKind, CredentialBan


class Command(BaseCommand):
    help = (
        "Lift credential bans: those of a client_id (its pairs and the client_id itself), "
        "of a client address, or one by fingerprint."
    )

    def add_arguments(self, parser):
        group = parser.add_mutually_exclusive_group(required=True)
        group.add_argument("--client-id", help="Lift the bans of this client_id and its pairs.")
        group.add_argument("--address", help="Lift the ban of this client address.")
        group.add_argument("--fingerprint", help="Lift the ban of one pair (a prefix will do).")

    def handle(self, *args, **options):
        bans = CredentialBan.objects.filter(lifted_at__isnull=True)
        if options["client_id"] is not None:
            bans = bans.filter(client_id=options["client_id"]).exclude(kind=BanKind.IP)
        elif options["address"] is not None:
            bans = bans.filter(client_id=options["address"].strip(), kind=BanKind.IP)
        else:
            prefix = options["fingerprint"].strip().lower()
            if len(prefix) < 8:
                raise CommandError("Give at least 8 characters of the fingerprint.")
            bans = bans.filter(fingerprint__startswith=prefix)
        lifted = lift_bans(bans)
        self.stdout.write(self.style.SUCCESS(f"Lifted {len(lifted)} ban(s)."))
