"""CSVLogger: one row per epoch (``epoch`` + sorted log keys, Keras layout). The file is
rewritten atomically each epoch, so a reader (or a crash) never sees half a row."""
import csv
import io
import os

from symgrad.compiler.atomic import write_text

from .base import Callback


class CSVLogger(Callback):
    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename = os.fspath(filename)
        self.sep = separator
        self.append = append
        self.keys = None

    def on_train_begin(self, logs=None):
        self._prefix = ""
        self._append_header = True
        if self.append and os.path.exists(self.filename):
            with open(self.filename, encoding="utf-8", newline="") as f:
                self._prefix = f.read()
            self._append_header = not self._prefix.strip()
            if self._prefix and not self._prefix.endswith("\n"):
                self._prefix += "\n"
        self._buffer = io.StringIO()
        self._writer = None
        self.keys = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
            if self.params.get("do_validation"):
                self.keys += sorted("val_" + k for k in logs if not k.startswith("val_") and "val_" + k not in logs
                                    and k != "learning_rate")
        if self._writer is None:
            dialect = type("Dialect", (csv.excel,), {"delimiter": self.sep, "lineterminator": "\n"})
            self._writer = csv.DictWriter(self._buffer, fieldnames=["epoch"] + self.keys, dialect=dialect)
            if self._append_header:
                self._writer.writeheader()
        row = {"epoch": epoch}
        row.update((k, logs.get(k, "NA")) for k in self.keys)
        self._writer.writerow(row)
        write_text(self.filename, self._prefix + self._buffer.getvalue())
