from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("ratelimit_app", "0008_policy_edit"),
    ]

    operations = [
        migrations.AddField(
            model_name="tenant",
            name="revision",
            field=models.PositiveBigIntegerField(db_index=True, default=0, editable=False),
        ),
    ]
