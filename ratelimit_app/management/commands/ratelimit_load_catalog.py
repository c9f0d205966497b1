from django.core.management.base import BaseCommand

from ratelimit_app.catalog import load_catalog


class Command(BaseCommand):
    help = (
        "Create what is missing of the default endpoint groups, tiers, limits and token ban "
        "rule, and list the rows that differ from the source documents (an operator's "
        "edits, left as they are); --reset restores those."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--reset",
            action="store_true",
            help="Restore every row that differs from the documents, and list the changes.",
        )

    def handle(self, *args, **options):
        report = load_catalog(reset=options["reset"])
        for label in report.created:
            self.stdout.write(f"created {label}")
        for line in report.restored:
            self.stdout.write(self.style.WARNING(f"restored {line}"))
        for line in report.differing:
            self.stdout.write(f"differs {line}")
        if report.differing:
            self.stdout.write("Left as they are; run with --reset to restore the documents.")
        self.stdout.write(
            self.style.SUCCESS(
                f"Catalogue: {report.limits} tier limits; {len(report.created)} rows created, "
                f"{len(report.restored)} restored, {len(report.differing)} differing."
            )
        )
