from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("ratelimit_app", "0007_burst_help"),
    ]

    operations = [
        migrations.AddField(
            model_name="tenant",
            name="revision",
            field=models.PositiveBigIntegerField(db_index=True, default=0, editable=False),
        ),
    ]
