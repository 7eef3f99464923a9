"""The city's reference case as numbers: a deterministic plan and arrays, no database.

docs/design.md §6 Leverage: 2,902,100 vouchers claimed, 43,000,000 yuan of face value, 219,000,000 yuan of
consumption driven (leverage on issued 5.09), over 60,000 merchants, in rounds from 2020 to 2022.
`generate(seed, scale)` turns that into arrays (merchants, citizens, vouchers, redemptions and a
daily sales panel with a planted causal uplift); seed/city_scale.py writes them.

Everything is drawn from numpy generators seeded by `seed` (one independent stream per stage), so a
seed and a scale always give the same data. Money is int64 fen throughout; times are int64
microseconds since the epoch, UTC (Asia/Shanghai is UTC+8 all year, so a local day is a fixed shift).

Exactness at any scale s: vouchers = round(2,902,100 s); issued = round(43,000,000 s) yuan; driven =
issued x 219/43 rounded to the yuan (so leverage on issued is 5.09 to two decimals). The voucher mix
is solved in integers so the face values add up exactly, and the order amounts are drawn, scaled and
then corrected by single fen so they add up exactly, each order staying at or above its threshold.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

import numpy as np

from voucher.core import uscc as uscc_rules
from voucher.vouchers import codes as voucher_codes

DEFAULT_SEED = 20221231
REFERENCE_VOUCHERS = 2_902_100
REFERENCE_ISSUED_YUAN = 43_000_000
REFERENCE_DRIVEN_YUAN = 219_000_000
REFERENCE_MERCHANTS = 60_000
#: planted truth: each yuan of subsidy paid at a merchant on a day adds this many yuan to that
#: merchant's sales that day (incremental consumption per yuan paid, the causal leverage on paid)
TRUE_INCREMENTAL_LEVERAGE = 1.8
#: vouchers are usable for this many days after their claim (never past the campaign's end)
VALIDITY_DAYS = 14
#: the daily sales panel: this many weeks before each campaign, and at most this many redeeming
#: and this many comparable (eligible, not taking part) merchants per campaign
PRE_WEEKS = 8
POST_WEEKS = 4  # after each campaign, where the causal estimate looks for purchases pulled forward
PANEL_TREATED = 1000
PANEL_COMPARABLE = 1000
#: day-to-day noise of a merchant's sales (sd, relative)
NOISE = 0.04

#: see _number_vouchers
CITIZEN_BLOCKS = 4

US = 1_000_000
DAY_US = 86_400 * US
LOCAL_OFFSET_US = 8 * 3600 * US  # Asia/Shanghai, no daylight saving since 1991

DISTRICTS = ("海州区", "连云区", "赣榆区", "东海县", "灌云县", "灌南县", "经济技术开发区", "徐圩新区", "云台山景区")
DISTRICT_SHARE = (0.34, 0.12, 0.14, 0.13, 0.10, 0.08, 0.05, 0.02, 0.02)
#: 行政区划代码 in the USCC (functional zones register with the city)
DISTRICT_CODE = ("320706", "320703", "320707", "320722", "320723", "320724", "320700", "320700", "320700")
#: the categories the campaigns below reach (汽车 and the rest of CATEGORIES have their own measures)
CATEGORIES = ("餐饮", "零售", "农产品", "家电家居", "信息消费", "家政", "托育", "文旅", "体育", "影院")
CATEGORY_SHARE = (0.36, 0.30, 0.06, 0.06, 0.04, 0.04, 0.03, 0.075, 0.03, 0.005)
#: daily sales scale by category (家电 tickets are larger than a noodle shop's)
CATEGORY_LEVEL = (1.0, 1.2, 0.9, 2.5, 1.5, 0.8, 1.3, 1.4, 1.1, 1.6)
SIZE_CLASSES = ("micro", "small", "medium", "large")
SIZE_SHARE = (0.55, 0.30, 0.12, 0.03)
#: typical daily sales in yuan, and how much custom (vouchers redeemed) a merchant of the size draws
SIZE_LEVEL_YUAN = (600, 2_000, 8_000, 25_000)
SIZE_DRAW = (1.0, 3.0, 8.0, 20.0)

_STEMS = ("港城", "海州", "花果山", "云台", "连岛", "苍梧", "朐阳", "新浦", "墟沟", "板浦", "青口", "牛山", "伊山", "新安",
          "海头", "东关", "南城", "龙河", "陇海", "郁洲")
_SUFFIXES = {
    "餐饮": ("餐厅", "小吃店", "面馆", "饭店", "火锅店"), "零售": ("便利店", "超市", "百货", "商行"),
    "农产品": ("农产品店", "海鲜店", "果蔬店"), "家电家居": ("电器", "家居馆", "家具城"), "信息消费": ("数码店", "通讯店"),
    "家政": ("家政服务部",), "托育": ("托育中心", "早教中心"), "文旅": ("旅行社", "民宿", "特产店"),
    "体育": ("体育用品店", "健身馆"), "影院": ("影城",),
}


@dataclass(frozen=True)
class CampaignSpec:
    """One campaign of the reference case and its 满X减Y product (one product per campaign)."""

    measure: int
    name: str
    categories: tuple[str, ...]
    districts: tuple[str, ...]  # empty: the whole city
    face_yuan: int
    threshold_yuan: int
    valid_from: date
    weeks: int
    round_days: tuple[int, ...]  # days after valid_from on which a round opens, at 10:00 local
    vouchers: int  # at full scale; the solver adjusts the first 满30减8, 满40减10 and 满60减15 ones
    redemption_rate: float
    #: mean order amount over the threshold, as a multiple of the threshold, before global scaling
    excess: float
    #: (funding kind, funder, co-funding share)
    sources: tuple[tuple[str, str, int], ...] = (("municipal_finance", "市财政", 1),)

    @property
    def valid_until(self) -> date:
        return self.valid_from + timedelta(days=7 * self.weeks - 1)

    @property
    def label(self) -> str:
        return f"满{self.threshold_yuan}减{self.face_yuan}"


_CITY = ()
CAMPAIGNS: tuple[CampaignSpec, ...] = (
    CampaignSpec(1, "2020年“惠购港城”餐饮消费券", ("餐饮",), _CITY, 8, 30, date(2020, 5, 1), 8, (0, 14, 28, 42),
                 700_000, 0.92, 0.5),
    CampaignSpec(1, "2020年“惠购港城”综合消费券", ("零售", "家电家居", "农产品", "信息消费", "家政", "托育"), _CITY, 20, 80,
                 date(2020, 5, 1), 8, (0, 14, 28, 42), 447_900, 0.90, 0.4),
    CampaignSpec(1, "2021年“惠购港城”消费券", ("餐饮", "零售", "农产品"), _CITY, 10, 40, date(2021, 4, 30), 8,
                 (0, 14, 28, 42), 914_200, 0.91, 0.4),
    CampaignSpec(2, "2021年文旅体育观影消费券", ("文旅", "体育", "影院"), _CITY, 15, 60, date(2021, 9, 17), 6,
                 (0, 14, 28), 220_000, 0.85, 0.5),
    CampaignSpec(1, "2022年市区餐饮零售消费券", ("餐饮", "零售"), ("海州区", "连云区"), 20, 100, date(2022, 9, 16), 15,
                 (0, 14, 28, 42, 56, 70), 500_000, 0.93, 0.3),
    CampaignSpec(6, "2022年家电家居消费券", ("家电家居",), _CITY, 50, 200, date(2022, 10, 1), 13, (0, 28, 56),
                 120_000, 0.88, 2.0,
                 (("municipal_finance", "市财政", 2), ("enterprise", "参与活动的家电企业", 1))),
)
# The three campaigns whose counts absorb rounding (faces 8, 10 and 15: any yuan total is reachable).
_ADJUST = (0, 2, 3)


@dataclass(frozen=True)
class Plan:
    seed: int
    scale: float
    vouchers: int
    issued_fen: int
    driven_fen: int
    merchants: int  # taking part (each redeems at least one voucher)
    comparables: int  # eligible, in the sales panel, never redeeming
    citizens: int
    counts: tuple[int, ...]  # vouchers per campaign
    redeemed: tuple[int, ...]  # redemptions per campaign
    budgets_fen: tuple[int, ...]

    @property
    def leverage(self) -> float:
        return self.driven_fen / self.issued_fen


def solve_counts(vouchers: int, issued_yuan: int, scale: float) -> list[int]:
    """Vouchers per campaign, near the reference mix scaled, adding up exactly to both targets."""
    counts = [max(1, round(c.vouchers * scale)) for c in CAMPAIGNS]
    a, b, c = _ADJUST
    fa, fb, fc = (CAMPAIGNS[i].face_yuan for i in _ADJUST)
    fixed = [i for i in range(len(CAMPAIGNS)) if i not in _ADJUST]
    rest_n = vouchers - sum(counts[i] for i in fixed)
    rest_i = issued_yuan - sum(counts[i] * CAMPAIGNS[i].face_yuan for i in fixed)
    for delta in sorted(range(-200, 201), key=lambda d: (abs(d), d)):
        na = counts[a] + delta
        n2, i2 = rest_n - na, rest_i - fa * na
        # nb + nc = n2 and fb nb + fc nc = i2
        if (i2 - fb * n2) % (fc - fb):
            continue
        nc = (i2 - fb * n2) // (fc - fb)
        nb = n2 - nc
        if min(na, nb, nc) >= 1:
            counts[a], counts[b], counts[c] = na, nb, nc
            return counts
    raise ValueError(f"规模 {scale} 太小，无法按券种组合凑出准确的发券数量和面值总额")


def make_plan(seed: int = DEFAULT_SEED, scale: float = 1.0) -> Plan:
    if not 0 < scale <= 1.0:
        raise ValueError("规模应在 0 到 1 之间")
    vouchers = round(REFERENCE_VOUCHERS * scale)
    issued_yuan = round(REFERENCE_ISSUED_YUAN * scale)
    # driven = issued x 219/43 to the nearest yuan, in integers
    driven_yuan = (issued_yuan * REFERENCE_DRIVEN_YUAN * 2 + REFERENCE_ISSUED_YUAN) // (2 * REFERENCE_ISSUED_YUAN)
    counts = solve_counts(vouchers, issued_yuan, scale)
    redeemed = tuple(max(1, min(n, round(n * c.redemption_rate))) for n, c in zip(counts, CAMPAIGNS))
    budgets = []
    for n, spec in zip(counts, CAMPAIGNS):
        # 1% over what is issued, in whole thousands of yuan divisible among the co-funders: each
        # voucher is split by share and rounded, so an exact budget could fall a fen short per voucher.
        unit = 1000 * sum(s for _, _, s in spec.sources) * 100
        need = n * spec.face_yuan * 100 * 101 // 100
        budgets.append(-(-need // unit) * unit)
    merchants = max(50, round(REFERENCE_MERCHANTS * scale))
    largest_round = max(-(-n // len(c.round_days)) for n, c in zip(counts, CAMPAIGNS))
    return Plan(
        seed=seed, scale=scale, vouchers=vouchers, issued_fen=issued_yuan * 100, driven_fen=driven_yuan * 100,
        merchants=merchants, comparables=max(40, round(merchants / 10)),
        citizens=max(round(950_000 * scale), largest_round * 5 // 4 + 1),
        counts=tuple(counts), redeemed=redeemed, budgets_fen=tuple(budgets),
    )


# ---------------------------------------------------------------------------------------------
# Times


def local_day_start_us(day: date) -> int:
    """The first instant of a local day, as UTC microseconds."""
    return _epoch_us(datetime(day.year, day.month, day.day)) - LOCAL_OFFSET_US


def local_day_end_us(day: date) -> int:
    return local_day_start_us(day + timedelta(days=1)) - 1


def _epoch_us(naive_utc: datetime) -> int:
    return int(naive_utc.replace(tzinfo=timezone.utc).timestamp()) * US + naive_utc.microsecond


def to_datetime(us: int) -> datetime:
    """Naive UTC, as the database keeps it."""
    return datetime(1970, 1, 1) + timedelta(microseconds=int(us))


def local_day_index(us: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 of the local calendar day of each instant."""
    return (us + LOCAL_OFFSET_US) // DAY_US


def day_index(day: date) -> int:
    return (day - date(1970, 1, 1)).days


# ---------------------------------------------------------------------------------------------
# Generation


@dataclass
class CityData:
    plan: Plan
    # merchants (one store, one terminal each); the first plan.merchants take part
    merchant_name: list[str] = field(default_factory=list)
    merchant_uscc: list[str] = field(default_factory=list)
    merchant_category: np.ndarray = None  # index into CATEGORIES
    merchant_district: np.ndarray = None  # index into DISTRICTS
    merchant_size: np.ndarray = None  # index into SIZE_CLASSES
    citizen_hash: np.ndarray = None  # (citizens,) 64-character hex, ASCII bytes
    # rounds: per campaign, per round: (opens_at us, voucher count)
    rounds: list[list[tuple[int, int]]] = field(default_factory=list)
    # vouchers, ordered by round, citizen block, redeeming merchant and citizen, codes ascending (_number_vouchers)
    v_campaign: np.ndarray = None
    v_round: np.ndarray = None  # global round index (campaign-major)
    v_code: np.ndarray = None  # ASCII bytes
    v_citizen: np.ndarray = None  # citizen index
    v_claimed: np.ndarray = None
    v_valid_from: np.ndarray = None
    v_valid_until: np.ndarray = None
    v_redeemed: np.ndarray = None  # bool
    # redemptions, ordered by merchant and time; r_voucher indexes the vouchers above
    r_voucher: np.ndarray = None
    r_merchant: np.ndarray = None
    r_at: np.ndarray = None
    r_order: np.ndarray = None
    r_subsidy: np.ndarray = None
    # the daily sales panel
    s_merchant: np.ndarray = None
    s_day: np.ndarray = None  # days since the epoch
    s_sales: np.ndarray = None  # fen
    panel: list[dict] = field(default_factory=list)  # per campaign: treated and comparable merchant indexes
    sales_clipped: int = 0


def generate(seed: int = DEFAULT_SEED, scale: float = 1.0) -> CityData:
    plan = make_plan(seed, scale)
    streams = np.random.SeedSequence(seed).spawn(8)
    rng = [np.random.default_rng(s) for s in streams]
    data = CityData(plan=plan)
    _merchants(data, rng[0])
    _citizens(data, rng[1])
    _vouchers(data, rng[2])
    homes = _homes(data, rng[3])
    _redemptions(data, rng[4], homes)
    _order_amounts(data, rng[5])
    _sales_panel(data, rng[6])
    return data


def _covering_choice(rng: np.random.Generator, n: int, shares: tuple[float, ...]) -> np.ndarray:
    """n draws by share, the first len(shares) forced to each value once, so every value occurs."""
    p = np.asarray(shares, dtype=float)
    out = rng.choice(len(p), size=n, p=p / p.sum())
    k = min(n, len(p))
    out[:k] = np.arange(k)
    return out


def _merchants(data: CityData, rng: np.random.Generator) -> None:
    plan = data.plan
    n = plan.merchants + plan.comparables
    category = np.concatenate([
        _covering_choice(rng, plan.merchants, CATEGORY_SHARE), _covering_choice(rng, plan.comparables, CATEGORY_SHARE)
    ])
    district = np.concatenate([
        _covering_choice(rng, plan.merchants, DISTRICT_SHARE), _covering_choice(rng, plan.comparables, DISTRICT_SHARE)
    ])
    size = rng.choice(4, size=n, p=np.asarray(SIZE_SHARE))
    data.merchant_category, data.merchant_district, data.merchant_size = category, district, size
    stems = rng.integers(0, len(_STEMS), n)
    suffix_pick = rng.integers(0, 1 << 30, n)
    # USCC: 9 1 | district code | "MA" + 7 characters (a bijection of the index, offset by the seed) | check
    space = 31 ** 7
    offset = int(rng.integers(0, space))
    alphabet = uscc_rules.ALPHABET
    names, usccs = [], []
    for i in range(n):
        cat = CATEGORIES[category[i]]
        suffixes = _SUFFIXES[cat]
        suffix = suffixes[suffix_pick[i] % len(suffixes)]
        names.append(f"{_STEMS[stems[i]]}{suffix}（{DISTRICTS[district[i]]}·{i + 1:05d}）")
        value = (i * 1_000_003 + offset) % space
        chars = []
        for _ in range(7):
            value, digit = divmod(value, 31)
            chars.append(alphabet[digit])
        first17 = "91" + DISTRICT_CODE[district[i]] + "MA" + "".join(reversed(chars))
        usccs.append(first17 + uscc_rules.check_char(first17))
    data.merchant_name, data.merchant_uscc = names, usccs


def _hex_strings(rng: np.random.Generator, n: int, *, ordered: bool = False) -> np.ndarray:
    """n random 64-character hex strings (SHA-256 sized), ascending if `ordered`."""
    raw = rng.integers(0, 256, size=(n, 32), dtype=np.uint8)
    digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    out = np.empty((n, 64), dtype=np.uint8)
    out[:, 0::2] = digits[raw >> 4]
    out[:, 1::2] = digits[raw & 15]
    texts = out.view("S64").ravel()
    return np.sort(texts) if ordered else texts


def _citizens(data: CityData, rng: np.random.Generator) -> None:
    # In id order of their hashes: the unique index then grows at its right edge (see _vouchers).
    data.citizen_hash = _hex_strings(rng, data.plan.citizens, ordered=True)


def _codes(rng: np.random.Generator, n: int) -> np.ndarray:
    """n distinct well-formed voucher codes: an affine bijection of the index over 31^10, then the check."""
    space = 31 ** voucher_codes.DATA_LENGTH
    # a multiplier not divisible by 31 (so the map is a bijection), small enough for int64 products
    multiplier = 31 * int(rng.integers(10 ** 9, 6 * 10 ** 10)) + 7
    assert multiplier * max(n, 1) < 2 ** 63
    offset = int(rng.integers(0, space))
    # ascending: the alphabet is in ASCII order and the check character comes last, so the codes sort
    # as their values do (see _vouchers for why they are loaded in order)
    value = np.sort((np.arange(n, dtype=np.int64) * multiplier + offset) % space)
    alphabet = np.frombuffer(voucher_codes.ALPHABET.encode(), dtype=np.uint8)
    chars = np.empty((voucher_codes.CODE_LENGTH, n), dtype=np.uint8)  # a row per position: contiguous writes
    check = np.zeros(n, dtype=np.int64)
    for position in range(voucher_codes.DATA_LENGTH - 1, -1, -1):
        value, digit = np.divmod(value, 31)
        chars[position] = alphabet[digit]
        check += (position + 1) * digit
    chars[-1] = alphabet[check % 31]
    chars = np.ascontiguousarray(chars.T)
    return chars.view(f"S{voucher_codes.CODE_LENGTH}").ravel()


def _vouchers(data: CityData, rng: np.random.Generator) -> None:
    """Rounds, who claimed what when (one voucher per citizen per round), validity, which are redeemed."""
    plan = data.plan
    activity = rng.lognormal(0.0, 1.0, plan.citizens)  # some citizens claim in most rounds, some rarely
    log_activity = np.log(activity)
    parts: dict[str, list[np.ndarray]] = {
        k: [] for k in ("campaign", "round", "citizen", "claimed", "until", "redeemed")}
    round_index = 0
    for c, (spec, count, redeemed) in enumerate(zip(CAMPAIGNS, plan.counts, plan.redeemed)):
        per_round = [count // len(spec.round_days) + (1 if r < count % len(spec.round_days) else 0)
                     for r in range(len(spec.round_days))]
        end_us = local_day_end_us(spec.valid_until)
        rounds = []
        chosen_redeemed = np.zeros(count, dtype=bool)
        chosen_redeemed[rng.choice(count, size=redeemed, replace=False)] = True
        start = 0
        for r, (offset_days, quantity) in enumerate(zip(spec.round_days, per_round)):
            opens = local_day_start_us(spec.valid_from + timedelta(days=offset_days)) + 10 * 3600 * US
            rounds.append((opens, quantity))
            # distinct citizens, more active ones likelier (Gumbel top-k: weighted, without replacement)
            keys = log_activity + rng.gumbel(size=plan.citizens)
            citizens = np.argpartition(-keys, quantity - 1)[:quantity] if quantity < plan.citizens else \
                np.arange(plan.citizens)
            # the crowd comes in the first hours; stragglers over the next three days
            rush = rng.random(quantity) < 0.7
            delay = np.where(rush, rng.exponential(1800.0, quantity), rng.uniform(0, 3 * 86_400.0, quantity))
            claimed = np.minimum(opens + (delay * US).astype(np.int64), end_us - DAY_US)
            order = np.argsort(citizens, kind="stable")
            parts["campaign"].append(np.full(quantity, c))
            parts["round"].append(np.full(quantity, round_index))
            parts["citizen"].append(citizens[order])
            parts["claimed"].append(claimed[order])
            parts["until"].append(np.minimum(claimed[order] + VALIDITY_DAYS * DAY_US, end_us))
            parts["redeemed"].append(chosen_redeemed[start:start + quantity])
            start += quantity
            round_index += 1
        data.rounds.append(rounds)
    data.v_campaign = np.concatenate(parts["campaign"])
    data.v_round = np.concatenate(parts["round"])
    data.v_citizen = np.concatenate(parts["citizen"])
    data.v_claimed = np.concatenate(parts["claimed"])
    data.v_valid_until = np.concatenate(parts["until"])
    data.v_redeemed = np.concatenate(parts["redeemed"])
    data.v_valid_from = np.array([local_day_start_us(CAMPAIGNS[c].valid_from) for c in range(len(CAMPAIGNS))])[
        data.v_campaign]
    data.v_code = _codes(rng, len(data.v_campaign))  # assigned to ids once the order is final (_number)


def eligible(spec: CampaignSpec, category: np.ndarray, district: np.ndarray) -> np.ndarray:
    ok = np.isin(category, [CATEGORIES.index(c) for c in spec.categories])
    if spec.districts:
        ok &= np.isin(district, [DISTRICTS.index(d) for d in spec.districts])
    return ok


def _homes(data: CityData, rng: np.random.Generator) -> np.ndarray:
    """For each merchant taking part, one campaign guaranteed to send it a redemption (so every one of
    them redeems), spread so that no campaign is asked for more than its redemptions."""
    plan = data.plan
    category = data.merchant_category[:plan.merchants]
    district = data.merchant_district[:plan.merchants]
    fits = np.stack([eligible(spec, category, district) for spec in CAMPAIGNS], axis=1)
    if not fits.any(axis=1).all():
        raise ValueError("有商户不符合任何活动的行业和区县")
    load = np.zeros(len(CAMPAIGNS))
    capacity = np.asarray(plan.redeemed, dtype=float)
    homes = np.empty(plan.merchants, dtype=np.int64)
    for m in rng.permutation(plan.merchants):
        room = np.where(fits[m], (capacity - load) / capacity, -np.inf)
        homes[m] = int(np.argmax(room))
        load[homes[m]] += 1
    if (load > capacity).any():
        raise ValueError("规模太小：核销笔数不足以让每个参与商户至少核销一张券")
    return homes


def _business_time(rng: np.random.Generator, n: int) -> np.ndarray:
    """Seconds after local midnight: a lunch peak, a dinner peak, and the rest of opening hours."""
    kind = rng.random(n)
    seconds = np.where(
        kind < 0.4, rng.normal(12.25 * 3600, 1.2 * 3600, n),
        np.where(kind < 0.85, rng.normal(18.5 * 3600, 1.5 * 3600, n), rng.uniform(9 * 3600, 21.5 * 3600, n)),
    )
    outside = (seconds < 9 * 3600) | (seconds > 21.75 * 3600)
    seconds[outside] = rng.uniform(9 * 3600, 21.75 * 3600, int(outside.sum()))
    return seconds.astype(np.int64)


def _redemptions(data: CityData, rng: np.random.Generator, homes: np.ndarray) -> None:
    plan = data.plan
    n_merchants = plan.merchants
    draw = np.asarray(SIZE_DRAW)[data.merchant_size[:n_merchants]] * rng.lognormal(0.0, 0.8, n_merchants)
    voucher_ids = np.flatnonzero(data.v_redeemed)
    campaign_of = data.v_campaign[voucher_ids]
    merchant = np.empty(len(voucher_ids), dtype=np.int64)
    category = data.merchant_category[:n_merchants]
    district = data.merchant_district[:n_merchants]
    for c, spec in enumerate(CAMPAIGNS):
        slots = np.flatnonzero(campaign_of == c)
        pool = np.flatnonzero(eligible(spec, category, district))
        guaranteed = np.flatnonzero(homes == c)
        weights = draw[pool] / draw[pool].sum()
        chosen = np.concatenate([guaranteed, pool[rng.choice(len(pool), size=len(slots) - len(guaranteed), p=weights)]])
        merchant[slots] = chosen[rng.permutation(len(slots))]
    # when: a local day between the claim and the end of validity (sooner likelier), at a business
    # hour of that day (09:00-21:45), never before the claim nor after the voucher lapses
    claimed = data.v_claimed[voucher_ids]
    until = data.v_valid_until[voucher_ids]
    opens, closes = 9 * 3600 * US, 21 * 3600 * US + 45 * 60 * US
    first_day = local_day_index(claimed)
    first_day += (claimed + LOCAL_OFFSET_US) % DAY_US > closes - 30 * 60 * US
    last_day = local_day_index(until)
    last_day -= (until + LOCAL_OFFSET_US) % DAY_US < opens + 30 * 60 * US
    span = np.maximum(last_day - first_day, 0) + 1
    day = first_day + np.minimum((rng.beta(1.2, 2.5, len(voucher_ids)) * span).astype(np.int64), span - 1)
    day_start = day * DAY_US - LOCAL_OFFSET_US
    low = np.maximum(claimed + 60 * US, day_start + opens)
    high = np.minimum(until, day_start + closes)
    at = np.clip(day_start + _business_time(rng, len(voucher_ids)) * US, low, high)
    # By merchant, then time: a merchant's redemptions get ascending ids (its lists order by id), and
    # the store, merchant and store-and-key indexes grow at their right edge while loading.
    order = np.lexsort((at, merchant))
    data.r_voucher = voucher_ids[order]
    data.r_merchant = merchant[order]
    data.r_at = at[order]
    _number_vouchers(data)
    faces = np.asarray([c.face_yuan * 100 for c in CAMPAIGNS], dtype=np.int64)
    data.r_subsidy = faces[data.v_campaign[data.r_voucher]]


def _number_vouchers(data: CityData) -> None:
    """Put the vouchers in their final id order: by round, then block of citizens (CITIZEN_BLOCKS
    ranges of citizen ids), then the merchant that redeemed them (the unused last), then citizen.

    Loaded in this order, and the redemptions by merchant, no index takes random inserts over its
    whole width, which on this machine's 128 MB buffer pool evicts freshly dirtied pages (each
    eviction forcing a WAL flush): the redemptions' voucher_id indexes grow at one point per round
    and block, the vouchers' citizen_id index within one block's range at a time. Measured at full
    scale (vouchers + redemptions COPY, PostgreSQL): redemptions in time order 59 s for their table
    alone; voucher ids in citizen order 34 + 38 s; in merchant order 41 + 23 s; in 4 or 32 citizen
    blocks 62 s either way. Which citizen redeemed where stays as drawn; only the ids are arranged."""
    n = len(data.v_round)
    merchant_of = np.full(n, np.iinfo(np.int64).max)
    merchant_of[data.r_voucher] = data.r_merchant
    block = data.v_citizen * CITIZEN_BLOCKS // max(1, data.plan.citizens)
    order = np.lexsort((data.v_citizen, merchant_of, block, data.v_round))
    position = np.empty(n, dtype=np.int64)
    position[order] = np.arange(n)
    for name in ("v_campaign", "v_round", "v_citizen", "v_claimed", "v_valid_from", "v_valid_until", "v_redeemed"):
        setattr(data, name, getattr(data, name)[order])
    data.r_voucher = position[data.r_voucher]


def _order_amounts(data: CityData, rng: np.random.Generator) -> None:
    """Order amounts: each at least its threshold, together exactly the driven total."""
    campaign = data.v_campaign[data.r_voucher]
    threshold = np.asarray([c.threshold_yuan * 100 for c in CAMPAIGNS], dtype=np.int64)[campaign]
    excess_ratio = np.asarray([c.excess for c in CAMPAIGNS])[campaign]
    raw = threshold * excess_ratio * rng.gamma(1.3, 1 / 1.3, len(campaign))
    room = data.plan.driven_fen - int(threshold.sum())
    if room < 0:
        raise ValueError("带动消费目标低于各券门槛之和")
    excess = np.floor(raw * (room / raw.sum())).astype(np.int64)
    short = room - int(excess.sum())  # 0 <= short < number of orders: one fen more on that many orders
    excess[rng.choice(len(excess), size=short, replace=False)] += 1
    data.r_order = threshold + excess
    assert int(data.r_order.sum()) == data.plan.driven_fen


def _sales_panel(data: CityData, rng: np.random.Generator) -> None:
    """Daily sales of a sample of redeeming merchants and of comparable merchants (eligible, not taking
    part), over PRE_WEEKS weeks before each campaign, the campaign's own weeks and POST_WEEKS after.

    counterfactual(m, d) = level(m) x weekday(d) x (1 + noise(m, d))
    sales(m, d) = counterfactual(m, d) + TRUE_INCREMENTAL_LEVERAGE x subsidy paid at m on local day d

    level: by size class and category, times a lognormal merchant factor; weekday: weekends busier,
    mean 1 over a week, and every window is whole weeks, so it cancels between the pre-campaign and
    the campaign weeks; noise: independent, sd NOISE. There is no city-wide shock: a multiplicative
    one would bias any estimate in levels that weights merchants by their subsidy (big merchants get
    both more subsidy and bigger swings), which is a property of the estimator, not of the vouchers.
    Comparables are drawn like the redeeming merchants and taken in the treated sample's size classes
    where the pool has them, so a difference in differences (against the merchants' own weeks before,
    net of the comparables' change, per yuan paid) recovers the planted leverage. Sales are in fen,
    at least the day's voucher orders at that merchant (`sales_clipped` counts the days raised).
    """
    plan = data.plan
    n_all = plan.merchants + plan.comparables
    level = (np.asarray(SIZE_LEVEL_YUAN, dtype=float)[data.merchant_size] * np.asarray(CATEGORY_LEVEL)[
        data.merchant_category] * rng.lognormal(0.0, 0.35, n_all))
    weekday = np.array([0.92, 0.90, 0.93, 0.97, 1.05, 1.13, 1.10])  # Monday .. Sunday
    weekday = weekday / weekday.mean()
    # subsidy and orders per (merchant, local day)
    r_day = local_day_index(data.r_at)
    key = data.r_merchant * 100_000 + r_day
    uniq, inverse = np.unique(key, return_inverse=True)
    subsidy_by_key = np.bincount(inverse, weights=data.r_subsidy).astype(np.int64)
    orders_by_key = np.bincount(inverse, weights=data.r_order).astype(np.int64)
    redeeming = np.zeros(n_all, dtype=bool)
    redeeming[data.r_merchant] = True
    rows_m, rows_d = [], []
    for c, spec in enumerate(CAMPAIGNS):
        fits = eligible(spec, data.merchant_category, data.merchant_district)
        in_campaign = np.zeros(n_all, dtype=bool)
        in_campaign[data.r_merchant[data.v_campaign[data.r_voucher] == c]] = True
        pool_t = np.flatnonzero(in_campaign)
        treated = np.sort(rng.choice(pool_t, size=min(PANEL_TREATED, len(pool_t)), replace=False))
        pool_c = np.flatnonzero(fits & ~redeeming)
        comparable = _matched(rng, pool_c, data.merchant_size[treated], data.merchant_size, PANEL_COMPARABLE)
        first = day_index(spec.valid_from) - 7 * PRE_WEEKS
        last = day_index(spec.valid_until) + 7 * POST_WEEKS
        data.panel.append({
            "campaign": c, "treated": treated, "comparable": comparable,
            "pre": (first, day_index(spec.valid_from) - 1),
            "during": (day_index(spec.valid_from), day_index(spec.valid_until)),
            "post": (day_index(spec.valid_until) + 1, last),
        })
        members = np.concatenate([treated, comparable])
        span = np.arange(first, last + 1)
        rows_m.append(np.repeat(members, len(span)))
        rows_d.append(np.tile(span, len(members)))
    # a merchant in two campaigns' panels whose windows overlap gets each day once
    keys = np.unique(np.concatenate(rows_m) * 100_000 + np.concatenate(rows_d))
    merchants, days = keys // 100_000, keys % 100_000
    weekday_of = (days + 3) % 7  # 1970-01-01 was a Thursday
    noise = rng.normal(0.0, NOISE, len(days))
    counterfactual = level[merchants] * 100 * weekday[weekday_of] * (1 + noise)
    position = np.searchsorted(uniq, merchants * 100_000 + days)
    position = np.minimum(position, len(uniq) - 1)
    hit = uniq[position] == merchants * 100_000 + days
    subsidy = np.where(hit, subsidy_by_key[position], 0)
    orders = np.where(hit, orders_by_key[position], 0)
    sales = np.rint(counterfactual + TRUE_INCREMENTAL_LEVERAGE * subsidy).astype(np.int64)
    data.sales_clipped = int((sales < orders).sum())
    data.s_sales = np.maximum(np.maximum(sales, orders), 0)
    data.s_merchant, data.s_day = merchants, days


def _matched(rng: np.random.Generator, pool: np.ndarray, treated_sizes: np.ndarray, sizes: np.ndarray,
             limit: int) -> np.ndarray:
    """Up to `limit` merchants of the pool in the treated sample's size-class proportions (as far as
    the pool has them), the rest of the room filled from whatever the pool has left."""
    if len(pool) == 0:
        return pool
    want = min(limit, len(pool))
    chosen: list[np.ndarray] = []
    share = np.bincount(treated_sizes, minlength=4) / max(1, len(treated_sizes))
    for k in range(4):
        candidates = pool[sizes[pool] == k]
        take = min(len(candidates), int(round(share[k] * want)))
        if take:
            chosen.append(rng.choice(candidates, size=take, replace=False))
    picked = np.concatenate(chosen) if chosen else np.empty(0, dtype=np.int64)
    if len(picked) < want:
        rest = np.setdiff1d(pool, picked)
        picked = np.concatenate([picked, rng.choice(rest, size=min(len(rest), want - len(picked)), replace=False)])
    return np.sort(picked)
