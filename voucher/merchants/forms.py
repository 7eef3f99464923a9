from flask_wtf import FlaskForm
from wtforms import HiddenField, StringField
from wtforms.validators import DataRequired, Length

from voucher.core.forms import YuanField


class RedeemForm(FlaskForm):
    code = StringField("券码（扫码或输入）", validators=[DataRequired("请扫描二维码或输入券码"), Length(max=200)])
    order_amount = YuanField("订单金额（元）")
    #: one per rendered form: a double-tap or a retried submit redeems once and shows the first result
    idempotency_key = HiddenField()


class ReverseForm(FlaskForm):
    reason = StringField("撤销原因", default="收银误操作", validators=[DataRequired("请填写撤销原因"), Length(max=200)])
