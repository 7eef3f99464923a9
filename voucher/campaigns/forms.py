from flask_wtf import FlaskForm
from wtforms import (
    DateField,
    DateTimeLocalField,
    FieldList,
    Form,
    FormField,
    IntegerField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
    TimeField,
)
from wtforms.validators import DataRequired, Length, NumberRange, Optional, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from voucher.campaigns.models import FUNDING_KIND_LABELS, INSTRUMENT_LABELS, BudgetChangeKind
from voucher.core.forms import PercentField, YuanField, as_choices
from voucher.core.reference import CATEGORIES, DISTRICTS


def _plausible_year(form, field) -> None:
    if field.data is not None and not 2000 <= field.data.year <= 2100:
        raise ValidationError("日期应在 2000 年到 2100 年之间")


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class SourceForm(Form):
    """One funding source row; a row left blank is ignored."""

    # Choices are checked by the service, so a blank padding row does not fail here.
    kind = SelectField("类型", choices=as_choices(FUNDING_KIND_LABELS.items()), validate_choice=False)
    name = StringField("出资单位", validators=[Optional(), Length(max=80)])
    amount = YuanField("金额（元）", optional=True)
    status = SelectField("状态", choices=as_choices([("in_hand", "已到位"), ("sought", "争取中")]), validate_choice=False)
    share = IntegerField(
        "出资比例", default=1, validators=[Optional(), NumberRange(min=0, max=1000, message="出资比例应为 0 到 1000 的整数")]
    )

    @property
    def is_blank(self) -> bool:
        return not (self.name.data or "").strip() and not (self.amount.data or "").strip()


class CampaignForm(FlaskForm):
    measure_id = SelectField("政策措施", coerce=int, validators=[DataRequired("请选择政策措施")])
    name = StringField("活动名称", validators=[DataRequired("请填写活动名称"), Length(max=120)])
    description = TextAreaField("活动说明", validators=[Optional(), Length(max=2000)])
    instrument = SelectField("活动工具", choices=as_choices(INSTRUMENT_LABELS.items()))
    sources = FieldList(FormField(SourceForm), min_entries=3, max_entries=6)
    face_value = YuanField("券面额 / 门票价格 / 单张补贴上限（元）", optional=True)
    threshold = YuanField("使用门槛（元，满X可用，0 为无门槛）", allow_zero=True, optional=True)
    percent = PercentField("补贴比例（%）")
    planned_quantity = IntegerField(
        "计划发放数量（张，可不填）",
        validators=[Optional(), NumberRange(min=1, max=1_000_000_000, message="计划发放数量应在 1 到 10 亿之间")],
    )
    award_min = YuanField("单笔补贴下限（元）", optional=True)
    award_max = YuanField("单笔补贴上限（元）", optional=True)
    categories = MultiCheckboxField("适用行业（不选为全部）", choices=as_choices((c, c) for c in CATEGORIES))
    districts = MultiCheckboxField("适用区县（不选为全部）", choices=as_choices((d, d) for d in DISTRICTS))
    merchant_ids = MultiCheckboxField("指定商户（不选为符合条件的全部商户）", coerce=int, choices=[])
    valid_from = DateField("有效期开始", validators=[DataRequired("请选择有效期开始日期"), _plausible_year])
    valid_until = DateField("有效期结束", validators=[DataRequired("请选择有效期结束日期"), _plausible_year])
    validity_days = IntegerField(
        "领取后有效天数（可不填）", validators=[Optional(), NumberRange(min=1, max=3650, message="领取后有效天数应在 1 到 3650 之间")]
    )
    usable_from = TimeField("每日可用开始时间（可不填）", validators=[Optional()])
    usable_until = TimeField("每日可用结束时间（可不填）", validators=[Optional()])
    per_person_limit = IntegerField(
        "本活动每人限领（张，可不填）", validators=[Optional(), NumberRange(min=1, max=1000, message="每人限领应在 1 到 1000 之间")]
    )


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
    opens_at = DateTimeLocalField(
        "开放时间（北京时间）", format="%Y-%m-%dT%H:%M", validators=[DataRequired("请选择开放时间"), _plausible_year]
    )
    mode = SelectField(
        "发放方式", choices=as_choices([("first_come", "先到先得"), ("lottery", "摇号（可验证）")]), default="first_come"
    )
    batches = IntegerField(
        "分批开放（批）", default=1,
        validators=[Optional(), NumberRange(min=1, max=10, message="分批开放应在 1 到 10 批之间")],
    )
    batch_minutes = IntegerField(
        "每批间隔（分钟）", default=0,
        validators=[Optional(), NumberRange(min=0, max=1440, message="每批间隔应在 0 到 1440 分钟之间")],
    )


class ApproveForm(FlaskForm):
    """批准: a plain button, or with the reason for approving beyond the measure's plan. The service
    decides whether a reason is needed and checks it (campaigns/plan_check.py): the rule lives there."""

    plan_override_reason = TextAreaField("超计划批准理由", validators=[Optional()])


class ReasonForm(FlaskForm):
    reason = TextAreaField("原因", validators=[DataRequired("请填写原因"), Length(max=1000)])


class BudgetChangeForm(FlaskForm):
    kind = SelectField("调整类型", choices=as_choices((k.value, k.label) for k in BudgetChangeKind))
    funding_source_id = SelectField("资金来源", coerce=int)
    amount = YuanField("金额（元）")
    target_funding_source_id = SelectField("调剂至（仅调剂时填写）", coerce=int, validators=[Optional()])
    reason = TextAreaField("调整原因", validators=[DataRequired("请填写调整原因"), Length(max=1000)])


class GrantApplicationForm(FlaskForm):
    applicant_name = StringField("申报单位", validators=[DataRequired("请填写申报单位"), Length(max=120)])
    applicant_uscc = StringField("统一社会信用代码", validators=[DataRequired("请填写统一社会信用代码"), Length(max=18)])
    project = StringField("申报项目（活动名称、时间）", validators=[DataRequired("请填写申报项目"), Length(max=200)])
    evidence = TextAreaField("申报材料", validators=[DataRequired("请填写申报材料"), Length(max=4000)])
    requested = YuanField("申请金额（元）")
    district = SelectField("所在区县", choices=as_choices([("", "—")] + [(d, d) for d in DISTRICTS]), validate_choice=False)


class GrantReviewForm(FlaskForm):
    recommended = YuanField("建议补贴金额（元）")
    note = TextAreaField("初审意见", validators=[DataRequired("请填写初审意见"), Length(max=2000)])


class GrantApproveForm(FlaskForm):
    amount = YuanField("批准金额（元）")


class TargetProgressForm(FlaskForm):
    quantity = IntegerField(
        "数量",
        validators=[DataRequired("请填写数量（更正可填负数）"),
                    NumberRange(min=-1_000_000, max=1_000_000, message="数量应在 -1,000,000 到 1,000,000 之间")],
    )
    description = StringField("进展说明", validators=[DataRequired("请填写进展说明"), Length(max=200)])
    evidence = TextAreaField("佐证材料", validators=[DataRequired("请填写佐证材料"), Length(max=2000)])
    district = SelectField("区县", choices=as_choices([("", "全市")] + [(d, d) for d in DISTRICTS]), validate_choice=False)
