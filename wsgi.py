"""WSGI entry point: `flask --app wsgi run`, or a production server pointed at `wsgi:app`."""
from voucher import create_app

app = create_app()
