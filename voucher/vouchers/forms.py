from flask_wtf import FlaskForm
from wtforms import HiddenField, StringField
from wtforms.validators import DataRequired, Length


class PhoneForm(FlaskForm):
    phone = StringField("手机号码", validators=[DataRequired("请输入手机号码"), Length(max=20)])


class CodeForm(FlaskForm):
    phone = HiddenField()
    code = StringField("短信验证码", validators=[DataRequired("请输入验证码"), Length(max=6)])
