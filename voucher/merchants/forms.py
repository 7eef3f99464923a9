from flask_wtf import FlaskForm
from wtforms import FieldList, Form, FormField, HiddenField, PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, InputRequired, Length, Optional

from voucher.core.forms import YuanField, as_choices
from voucher.core.reference import CATEGORIES, DISTRICTS


class RedeemForm(FlaskForm):
    code = StringField("券码（扫码或输入）", validators=[DataRequired("请扫描二维码或输入券码"), Length(max=200)])
    order_amount = YuanField("订单金额（元）")
    #: one per rendered form: a double-tap or a retried submit redeems once and shows the first result
    idempotency_key = HiddenField(validators=[Length(max=64, message="请求编号过长")])


class ReverseForm(FlaskForm):
    reason = StringField("撤销原因", default="收银误操作", validators=[DataRequired("请填写撤销原因"), Length(max=200)])


class StoreRowForm(Form):
    name = StringField("门店名称", validators=[Optional(), Length(max=120)])
    district = SelectField("区县", choices=as_choices([("", "—")] + [(d, d) for d in DISTRICTS]), validate_choice=False)
    address = StringField("地址", validators=[Optional(), Length(max=200)])


class MerchantApplicationForm(FlaskForm):
    name = StringField("商户名称（与营业执照一致）", validators=[DataRequired("请填写商户名称"), Length(max=120)])
    uscc = StringField("统一社会信用代码", validators=[DataRequired("请填写统一社会信用代码"), Length(max=18)])
    category = SelectField("行业类别", choices=as_choices((c, c) for c in CATEGORIES), validate_choice=False)
    stores = FieldList(FormField(StoreRowForm), min_entries=3, max_entries=10)
    bank_account_name = StringField("结算账户户名", validators=[DataRequired("请填写结算账户户名"), Length(max=120)])
    bank_name = StringField("开户行", validators=[DataRequired("请填写开户行"), Length(max=120)])
    bank_account_no = StringField("结算账号", validators=[DataRequired("请填写结算账号"), Length(max=40)])
    manager_username = StringField("管理员用户名", validators=[DataRequired("请填写管理员用户名"), Length(max=32)])
    manager_display_name = StringField("管理员称呼", validators=[Optional(), Length(max=64)])
    manager_password = PasswordField("管理员密码（至少 10 位）", validators=[DataRequired("请设置密码"), Length(max=128)])
    contact_phone = StringField("联系电话", validators=[DataRequired("请填写联系电话"), Length(max=32)])
    previous_password = PasswordField("原管理员密码（被驳回后重新申请时填写）", validators=[Optional(), Length(max=128)])


class ApplicationStatusForm(FlaskForm):
    """申请进度查询: the USCC and the contact phone given in the application."""

    uscc = StringField("统一社会信用代码", validators=[DataRequired("请填写统一社会信用代码"), Length(max=40)])
    contact_phone = StringField("联系电话", validators=[DataRequired("请填写联系电话"), Length(max=32)])


class ApproveMerchantForm(FlaskForm):
    """The approver may give the manager account another sign-in name (the one asked for is taken)."""

    manager_username = StringField("管理员用户名", validators=[Optional(), Length(max=32)])


class CashierForm(FlaskForm):
    store_id = SelectField("门店", coerce=int, validate_choice=False)
    username = StringField("用户名", validators=[DataRequired("请填写用户名"), Length(max=32)])
    display_name = StringField("姓名/称呼", validators=[Optional(), Length(max=64)])
    password = PasswordField("初始密码（至少 10 位）", validators=[DataRequired("请设置密码"), Length(max=128)])


class TerminalForm(FlaskForm):
    store_id = SelectField("门店", coerce=int, validate_choice=False, validators=[InputRequired("请选择门店")])
    label = StringField("终端名称", default="收银终端", validators=[DataRequired("请填写终端名称"), Length(max=80)])
