from django.db import migrations


def forwards(apps: object, schema_editor: object) -> None:
    pass


class Migration(migrations.Migration):
    dependencies = [("crm", "0001_initial")]
    operations = [migrations.RunPython(forwards)]  # no reverse_code: irreversible
