from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("crm", "0001_initial")]
    operations = [
        migrations.AddField(
            "contact", "code", models.CharField(max_length=20, null=True, unique=True)
        ),
    ]
