from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("crm", "0002_first")]
    operations = [migrations.RunSQL("SELECT 2", reverse_sql="SELECT 2")]
