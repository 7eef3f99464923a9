from flask_wtf import FlaskForm
from wtforms import HiddenField, StringField
from wtforms.validators import DataRequired, Length, Regexp

from voucher.core.typed_text import clean


class PhoneForm(FlaskForm):
    # The number is folded (full-width digits, spaces, dashes) by citizens.normalise_phone, which says
    # what is wrong with it; the length only keeps a pasted essay out.
    phone = StringField("手机号码", validators=[DataRequired("请输入手机号码"), Length(max=40, message="手机号码过长")])
    #: set by the 重新获取验证码 button: the same request as the first, under the same limits
    resend = HiddenField()


class CodeForm(FlaskForm):
    phone = HiddenField()
    # Folded as typed: "１２３ ４５６" from a Chinese IME is 123456.
    code = StringField("短信验证码", filters=[clean], validators=[
        DataRequired("请输入验证码"), Regexp(r"^[0-9]{6}$", message="请输入短信中的 6 位数字验证码")])
