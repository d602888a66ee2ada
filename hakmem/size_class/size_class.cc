#include "hakmem/size_class/size_class.h"

#include "hakmem/platform/platform.h"

namespace hakmem {

const char* LaneName(Lane lane) {
  switch (lane) {
    case Lane::kTiny:
      return "tiny";
    case Lane::kPool:
      return "pool";
    case Lane::kLarge:
      return "large";
    case Lane::kHuge:
      return "huge";
  }
  return "?";
}

void PrintSizeClassTable(int fd) {
  platform::DiagLine()
      .Str("class")
      .Pad(7)
      .Str("lane")
      .Pad(13)
      .Str("size")
      .Pad(22)
      .Str("slab KiB")
      .Pad(32)
      .Str("blocks")
      .Pad(40)
      .Str("batch")
      .Pad(47)
      .Str("cache")
      .Pad(54)
      .Str("max waste %")
      .Write(fd);
  for (int c = 0; c < kNumClasses; ++c) {
    const SizeClassInfo& info = kSizeClasses[c];
    const size_t worst = c == 0 ? 1 : kSizeClasses[c - 1].size + 1;
    // Waste in hundredths of a percent, of the smallest request this class takes.
    const uint64_t waste = (info.size - worst) * 10000 / worst;
    platform::DiagLine()
        .Dec(c)
        .Pad(7)
        .Str(LaneName(LaneOf(info.size)))
        .Pad(13)
        .Dec(info.size)
        .Pad(22)
        .Dec(info.slab_units * kUnitSize / 1024)
        .Pad(32)
        .Dec(info.blocks)
        .Pad(40)
        .Dec(info.batch)
        .Pad(47)
        .Dec(info.cache_max)
        .Pad(54)
        .Dec(waste / 100)
        .Str(".")
        .Dec(waste % 100 / 10)
        .Dec(waste % 10)
        .Write(fd);
  }
  platform::DiagLine()
      .Str("large: ")
      .Dec(kPoolMax + 1)
      .Str(" .. ")
      .Dec(kHugeThreshold)
      .Str(" bytes in runs of ")
      .Dec(kUnitSize / 1024)
      .Str(" KiB units; huge: above ")
      .Dec(kHugeThreshold)
      .Str(" bytes, one mapping each")
      .Write(fd);
}

}  // namespace hakmem
