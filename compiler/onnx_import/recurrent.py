"""LSTM, GRU and RNN: they translate onto compiler/ops_rnn.py once that lands (the
models-io branch); until then the table lists them as not supported."""
from .registry import unsupported

unsupported("recurrent layers arrive with compiler/ops_rnn.py", "LSTM", "GRU", "RNN")
