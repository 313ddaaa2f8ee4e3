from django.db import migrations, models


class Migration(migrations.Migration):
    """Dropping a unique constraint: Django looks its name up in the schema first."""

    dependencies = [("crm", "0002_contact_code")]
    operations = [
        migrations.AlterField("contact", "code", models.CharField(max_length=20, null=True)),
    ]
