from django.core.management.base import BaseCommand

from ratelimit_app.models import CredentialBan


class Command(BaseCommand):
    help = "List credential bans in force (with --all, every ban)."

    def add_arguments(self, parser):
        parser.add_argument("--all", action="store_true", help="Include expired and lifted bans.")

    def handle(self, *args, **options):
        bans = CredentialBan.objects.all() if options["all"] else CredentialBan.objects.active()
        rows = list(bans.order_by("-banned_at"))
        for ban in rows:
            status = "lifted" if ban.lifted_at else ("active" if ban.is_active() else "expired")
            self.stdout.write(
                f"{ban.short_fingerprint}  {ban.get_kind_display():18}  {ban.client_id!r:40}  "
                f"failures={ban.failures}  "
                f"banned={ban.banned_at:%Y-%m-%d %H:%M:%S}  "
                f"expires={ban.expires_at:%Y-%m-%d %H:%M:%S}  {status}"
            )
        self.stdout.write(f"{len(rows)} ban(s).")
