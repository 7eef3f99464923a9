"""Extensions, created unbound and attached in create_app()."""
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_wtf import CSRFProtect

from voucher.core.db import db

migrate = Migrate()
csrf = CSRFProtect()
login_manager = LoginManager()
login_manager.login_view = "accounts.login"
login_manager.login_message = "请先登录"
login_manager.login_message_category = "warning"

__all__ = ["db", "migrate", "csrf", "login_manager"]
