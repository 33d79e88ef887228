"""The state database: tables, migrations and the queries the bridge runs."""
