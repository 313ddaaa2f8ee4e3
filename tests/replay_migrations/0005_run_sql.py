from django.db import migrations


class Migration(migrations.Migration):
    """SQL that the replay must carry whole: a string of several statements starting with SET,
    and a write to the django_migrations table itself; and a note of how the transaction that
    applies it commits."""

    dependencies = [("crm", "0004_company_per_schema")]
    operations = [
        migrations.RunSQL(
            "SET CONSTRAINTS ALL IMMEDIATE; CREATE TABLE crm_replay_check (id integer)",
            "DROP TABLE crm_replay_check",
        ),
        migrations.RunSQL(
            "INSERT INTO django_migrations (app, name, applied)"
            " VALUES ('legacy', '0001_marker', now())",
            "DELETE FROM django_migrations WHERE app = 'legacy'",
        ),
        migrations.RunSQL(
            "CREATE TABLE crm_commit_mode AS"
            " SELECT current_setting('synchronous_commit') AS synchronous_commit",
            "DROP TABLE crm_commit_mode",
        ),
    ]
