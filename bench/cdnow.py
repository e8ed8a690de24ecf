"""The CDNOW transaction log that the `lifetimes` package ships: 23,570 customers who made their
first purchase at the CD retailer CDNOW in the first quarter of 1997, and every purchase they made
until the end of June 1998 (69,659 rows: customer, day, number of CDs, dollar value)."""

from dataclasses import dataclass
from importlib.resources import files

import numpy as np
import numpy.typing as npt

FILE = ("lifetimes", "datasets/CDNOW_master.txt")


@dataclass(frozen=True)
class Orders:
    """One row per customer and day (purchases on the same day are one order, amounts added)."""

    customer: npt.NDArray[np.int64]
    day: npt.NDArray[np.datetime64]
    amount: npt.NDArray[np.float64]

    @property
    def customers(self) -> npt.NDArray[np.int64]:
        return np.unique(self.customer)


def load_cdnow() -> Orders:
    package, path = FILE
    try:
        text = (files(package) / path).read_text()
    except ModuleNotFoundError as exc:
        raise SystemExit(f"{exc}: install the bench extra (pip install -e '.[bench]')") from exc
    table = np.loadtxt(text.splitlines(), dtype=np.float64, skiprows=1, ndmin=2)
    customer = table[:, 0].astype(np.int64)
    raw = table[:, 1].astype(np.int64)
    days = np.array(
        [f"{d // 10000:04d}-{d // 100 % 100:02d}-{d % 100:02d}" for d in raw.tolist()],
        dtype="datetime64[D]",
    )
    key = customer * 100_000 + (days - np.datetime64("1990-01-01", "D")).astype(np.int64)
    unique, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    amount = np.bincount(inverse, weights=table[:, 3], minlength=unique.shape[0])
    return Orders(customer=customer[first], day=days[first], amount=np.round(amount, 2))
