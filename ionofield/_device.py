"""Which torch device a fit or a reconstruction runs on, and in which precision.

:func:`resolve_device` and :func:`resolve_precision`.
"""

from __future__ import annotations

import typing
from typing import Literal

import torch

from ionofield.config import Precision
from ionofield.errors import ConfigError

#: CPU features (:func:`torch.cpu.get_capabilities`) that compute bfloat16 products
#: natively: AVX-512 BF16 (Intel Cooper Lake and later, AMD Zen 4 and later) and AMX.
CPU_BFLOAT16_FEATURES = ("avx512_bf16", "amx_bf16")

#: What ``device=`` accepts besides a :class:`torch.device`, for messages.
DEVICE_HELP = (
    "give 'auto' (the first GPU when torch sees one, else the CPU), 'cpu', 'cuda', "
    "'cuda:1' or 'mps'"
)


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """The torch device that ``device`` names, checked to be usable here.

    Parameters
    ----------
    device
        ``"auto"`` (or None): the first CUDA GPU when torch sees one, else Apple's MPS
        when available, else the CPU; or any torch device string or
        :class:`torch.device` (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``).

    Returns
    -------
    torch.device
        With an index for CUDA (``"cuda"`` is ``cuda:0``).

    Raises
    ------
    ConfigError
        The name is not a device, or this machine's torch cannot use it (the message
        says how to install a build that can).

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if device is None or (isinstance(device, str) and device.strip().lower() == "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        found = torch.device(device.strip().lower() if isinstance(device, str) else device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ConfigError(
            f"device = {device!r} is not a torch device ({exc}); {DEVICE_HELP}"
        ) from exc
    if found.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device = {device!r}: this torch ({torch.__version__}) sees no CUDA GPU; "
                "install a CUDA build of torch (see the installation page: pip install "
                "torch --index-url https://download.pytorch.org/whl/cu126) on a machine with "
                "an NVIDIA driver, or use device='cpu'"
            )
        index = torch.cuda.current_device() if found.index is None else found.index
        if index >= torch.cuda.device_count():
            raise ConfigError(
                f"device = {device!r}: this machine has {torch.cuda.device_count()} CUDA "
                f"GPU(s), numbered from 0; give one of them, e.g. 'cuda:0'"
            )
        return torch.device("cuda", index)
    if found.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(
            f"device = {device!r}: Apple's MPS is not available to this torch "
            f"({torch.__version__}); use device='cpu'"
        )
    if found.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"device = {device!r}: ionofield runs on cpu, cuda or mps; {DEVICE_HELP}")
    return found


def native_bfloat16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 matrix products natively (not emulated).

    Parameters
    ----------
    device
        A resolved device (:func:`resolve_device`).

    Returns
    -------
    bool
        True on a CPU with one of :data:`CPU_BFLOAT16_FEATURES` and on a CUDA GPU
        with bfloat16 units (compute capability 8.0 and later); False elsewhere,
        MPS included.
    """
    if device.type == "cuda":
        with torch.cuda.device(device):
            return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        features = torch.cpu.get_capabilities()
        return any(features.get(name, False) for name in CPU_BFLOAT16_FEATURES)
    return False


def resolve_precision(
    precision: Precision, device: torch.device, *, where: str
) -> Literal["float32", "bfloat16"]:
    """The precision ``precision`` names on ``device``, checked.

    Parameters
    ----------
    precision
        ``"auto"``: ``"bfloat16"`` where the device computes it natively
        (:func:`native_bfloat16`), else ``"float32"``; or either of those.
    device
        The resolved device the network runs on.
    where
        The function or option that took it, for the message.

    Returns
    -------
    str
        ``"float32"`` or ``"bfloat16"``.

    Raises
    ------
    ConfigError
        ``precision`` is none of the three.

    Examples
    --------
    >>> resolve_precision("float32", torch.device("cpu"), where="reconstruct")
    'float32'
    """
    if precision not in typing.get_args(Precision):
        raise ConfigError(
            f"{where}: precision={precision!r}; give one of "
            f"{', '.join(map(repr, typing.get_args(Precision)))}"
        )
    if precision == "auto":
        return "bfloat16" if native_bfloat16(device) else "float32"
    return precision
