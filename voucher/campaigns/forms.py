from flask_wtf import FlaskForm
from wtforms import DateField, DateTimeLocalField, IntegerField, SelectField, SelectMultipleField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, NumberRange, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from voucher.campaigns.models import FUNDING_KIND_LABELS
from voucher.core.forms import YuanField
from voucher.merchants.models import CATEGORIES, DISTRICTS


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class CampaignForm(FlaskForm):
    measure_id = SelectField("政策措施", coerce=int, validators=[DataRequired("请选择政策措施")])
    name = StringField("活动名称", validators=[DataRequired("请填写活动名称"), Length(max=120)])
    description = TextAreaField("活动说明", validators=[Optional(), Length(max=2000)])
    funding_kind = SelectField("资金来源", choices=list(FUNDING_KIND_LABELS.items()))
    funding_name = StringField("出资单位", default="市财政", validators=[DataRequired("请填写出资单位"), Length(max=80)])
    budget = YuanField("活动预算（元）")
    face_value = YuanField("券面额（元）")
    threshold = YuanField("使用门槛（满X元可用，0 为无门槛）", allow_zero=True)
    categories = MultiCheckboxField("适用行业（不选为全部）", choices=[(c, c) for c in CATEGORIES])
    districts = MultiCheckboxField("适用区县（不选为全部）", choices=[(d, d) for d in DISTRICTS])
    valid_from = DateField("有效期开始", validators=[DataRequired("请选择有效期开始日期")])
    valid_until = DateField("有效期结束", validators=[DataRequired("请选择有效期结束日期")])


class ReleaseForm(FlaskForm):
    name = StringField("场次名称", validators=[DataRequired("请填写场次名称"), Length(max=80)])
    quantity = IntegerField(
        "发放数量（张）",
        validators=[DataRequired("请填写发放数量"), NumberRange(min=1, max=1_000_000, message="发放数量应在 1 到 1,000,000 之间")],
    )
    per_person_limit = IntegerField(
        "每人限领（张）", default=1,
        validators=[DataRequired("请填写每人限领数量"), NumberRange(min=1, max=100, message="每人限领应在 1 到 100 之间")],
    )
    opens_at = DateTimeLocalField("开放时间（北京时间）", format="%Y-%m-%dT%H:%M", validators=[DataRequired("请选择开放时间")])


class RejectForm(FlaskForm):
    reason = TextAreaField("退回原因", validators=[DataRequired("请填写退回原因"), Length(max=1000)])
