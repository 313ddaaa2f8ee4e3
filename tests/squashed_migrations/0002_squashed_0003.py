from django.db import migrations


class Migration(migrations.Migration):
    replaces = [("crm", "0002_first"), ("crm", "0003_second")]
    dependencies = [("crm", "0001_initial")]
    operations = [
        migrations.RunSQL("SELECT 1", reverse_sql="SELECT 1"),
        migrations.RunSQL("SELECT 2", reverse_sql="SELECT 2"),
    ]
