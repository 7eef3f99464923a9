from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length

from voucher.accounts.passwords import MAX_LENGTH, MIN_LENGTH


class LoginForm(FlaskForm):
    username = StringField("用户名", validators=[DataRequired("请输入用户名"), Length(max=64)])
    password = PasswordField("密码", validators=[DataRequired("请输入密码"), Length(max=128)])


class ChangePasswordForm(FlaskForm):
    current_password = PasswordField("当前密码", validators=[DataRequired("请输入当前密码"), Length(max=MAX_LENGTH)])
    # The rule itself (length, the username, guessability) is checked by the service, one place for
    # the page, the command line and the merchant pages.
    new_password = PasswordField("新密码", validators=[
        DataRequired("请输入新密码"), Length(max=MAX_LENGTH, message=f"密码不能超过 {MAX_LENGTH} 位")])
    confirm_password = PasswordField("再次输入新密码", validators=[
        DataRequired("请再次输入新密码"), EqualTo("new_password", "两次输入的新密码不一致")])

    password_hint = f"至少 {MIN_LENGTH} 位，不能包含用户名，不能是常见密码或简单规律（如 12345678、password）"


class ActionForm(FlaskForm):
    """A button that changes state: carries only the CSRF token."""


class TwoFactorCodeForm(FlaskForm):
    """A 6-digit code from the authenticator app (or, at sign-in, a recovery code). Full-width digits
    from an IME and spaces are accepted: accounts/two_factor.py normalises what was typed."""

    code = StringField("验证码", validators=[DataRequired("请输入验证码"), Length(max=32, message="验证码过长")])
