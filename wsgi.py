"""WSGI entry point: `flask --app wsgi run`, or a production server pointed at `wsgi:app`."""
from voucher import create_app

app = create_app()
if app.config["ENV_NAME"] != "production":
    # Development data (`flask seed demo`, `seed city-scale`) lives outside the product, in seed/,
    # which voucher/ never imports: its commands join the `seed` group here, and never in production.
    from seed.cli import register as register_seed_commands

    register_seed_commands(app)
