"""Progress reporting for coding runs, shared by the CLI, the stages and the benchmark."""

from __future__ import annotations


class CodingProgress:
    """A tqdm bar of images done, running net bits/dim and images/s."""

    def __init__(self, total: int, desc: str, num_pixels: int = 784, show_rate: bool = True):
        from tqdm import tqdm

        self.show_rate = show_rate
        self.bar = tqdm(total=total, desc=desc, unit="img", leave=False)
        self.done = 0
        self.num_pixels = num_pixels

    def __call__(self, count: int, message) -> None:
        self.done += count
        self.bar.update(count)
        if self.show_rate and self.done:
            self.bar.set_postfix(net_bpd=f"{message.net_bits / (self.done * self.num_pixels):.4f}",
                                 refresh=False)

    def close(self) -> None:
        self.bar.close()
