from django.core.management.base import BaseCommand, CommandError

from ratelimit_app.reset import ResetError, StoreUnavailable, reset_party


class Command(BaseCommand):
    help = (
        "Reset a party's counters in the counter store (every worker honours it at once): "
        "a tenant's (with its API keys'), an API key's, an address's, or a client_id's "
        "failure counts and bans."
    )

    def add_arguments(self, parser):
        group = parser.add_mutually_exclusive_group(required=True)
        group.add_argument("--tenant", help="The tenant's slug or id.")
        group.add_argument("--api-key", help="The API key's prefix (or the whole key).")
        group.add_argument("--ip", help="The client address (an IPv6 address resets its /64).")
        group.add_argument("--client-id", help="The OAuth client_id: its failure counts and bans.")

    def handle(self, *args, **options):
        party = {name: options[name] for name in ("tenant", "api_key", "ip", "client_id")}
        try:
            done = reset_party(**{k: v for k, v in party.items() if v is not None})
        except (ResetError, StoreUnavailable) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"Reset {done.kind} {done.shown_as}: {done.keys} counter key(s) cleared, "
                f"{done.bans_lifted} ban(s) lifted."
            )
        )
