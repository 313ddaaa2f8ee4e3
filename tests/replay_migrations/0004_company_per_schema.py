from django.db import migrations


def create_company_named_after_schema(apps, schema_editor):
    Company = apps.get_model("crm", "Company")
    Company.objects.create(name=f"created in {schema_editor.connection.schema_name}")


class Migration(migrations.Migration):
    """Data written by Python, different in each schema: never replayed."""

    dependencies = [("crm", "0003_contact_code_not_unique")]
    operations = [
        migrations.RunPython(create_company_named_after_schema, migrations.RunPython.noop)
    ]
