"""The city's reference data that every domain uses: its districts and counties, and the merchant
categories the twenty measures speak of (a campaign's eligibility, a measure's targets, a merchant's
application)."""
from __future__ import annotations

CATEGORIES = ["餐饮", "零售", "汽车", "家电家居", "文旅", "体育", "影院", "农产品", "托育", "家政", "信息消费"]
DISTRICTS = ["海州区", "连云区", "赣榆区", "东海县", "灌云县", "灌南县", "经济技术开发区", "徐圩新区", "云台山景区"]
