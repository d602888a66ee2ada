#include "hakmem/ace/ace.h"

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace hakmem::ace {
namespace {

constexpr uint64_t kKiB = 1024;

uint64_t Bytes(int cls, uint32_t blocks) { return uint64_t{blocks} * kSizeClasses[cls].size; }

// The sum the budget bounds, recomputed from the classes.
uint64_t SumOfLimits(const State& s) {
  uint64_t sum = 0;
  for (int cls = 0; cls < kNumClasses; ++cls) sum += Bytes(cls, s.classes[cls].limit);
  return sum;
}

State Fresh(uint64_t budget) {
  State s{};
  Configure(&s, budget);
  return s;
}

std::vector<int> Trims(State* s) {
  std::vector<int> out;
  for (int cls; (cls = TakeTrim(s, 0, kNumClasses)) >= 0;) out.push_back(cls);
  return out;
}

TEST(AceTest, AClassStartsAtItsFixedLimit) {
  State s = Fresh(4096 * kKiB);
  for (int cls : {0, 3, 31, 32, 56, 72, kNumClasses - 1}) {
    EXPECT_EQ(LimitOf(s, cls), DefaultLimit(cls)) << "before its first event";
    const Decision d = OnEvent(&s, cls, Event::kRefill);
    EXPECT_EQ(d.limit, DefaultLimit(cls)) << cls;
    // Half its limit: the table's batch, unless the limit was capped (hardened).
    EXPECT_EQ(d.batch, BatchFor(DefaultLimit(cls))) << cls;
    if (DefaultLimit(cls) == kSizeClasses[cls].cache_max) {
      EXPECT_EQ(d.batch, kSizeClasses[cls].batch) << cls;
    }
  }
  EXPECT_EQ(s.used, SumOfLimits(s));
}

TEST(AceTest, RepeatedMissesGrowTheLimitByHalfUpToTheCap) {
  State s = Fresh(4096 * kKiB);
  const int cls = SizeClass(36 << 10);  // fixed limit 7
  const uint32_t cap = CapLimit(s, cls);
  EXPECT_EQ(cap, 2048 * kKiB / kSizeClasses[cls].size) << "half the budget";
  uint32_t limit = OnEvent(&s, cls, Event::kRefill).limit;
  int events = 1;
  while (limit < cap) {
    const Decision d = OnEvent(&s, cls, Event::kRefill);
    ++events;
    ASSERT_EQ(d.limit, std::min(cap, limit + limit / 2)) << "after " << events << " events";
    EXPECT_EQ(d.batch, d.limit / 2);
    limit = d.limit;
  }
  EXPECT_LE(events, 12) << "slow start: a geometric climb";
  EXPECT_EQ(OnEvent(&s, cls, Event::kRefill).limit, cap) << "never past the cap";
  EXPECT_EQ(PeakLimit(cls) >= cap, true);
  EXPECT_EQ(s.used, Bytes(cls, cap));
  EXPECT_TRUE(Trims(&s).empty()) << "nothing was lowered";
}

TEST(AceTest, SmallClassesStopAtMaxLimit) {
  State s = Fresh(64 * 1024 * kKiB);
  for (int i = 0; i < 100; ++i) OnEvent(&s, 0, Event::kRefill);
  EXPECT_EQ(s.classes[0].limit, kMaxLimit);
}

TEST(AceTest, AnIdleClassHalvesEachWindowDownToItsFloor) {
  State s = Fresh(4096 * kKiB);
  const int idle = SizeClass(18 << 10);  // floor one block
  const int busy = 3;
  for (int i = 0; i < 8; ++i) OnEvent(&s, idle, Event::kRefill);
  const uint32_t grown = s.classes[idle].limit;
  ASSERT_GT(grown, DefaultLimit(idle));
  // Events of another class only: the first scan after a whole idle window halves it.
  uint32_t expected = grown;
  int scans_with_shrink = 0;
  for (int window = 0; window < 12; ++window) {
    for (uint32_t i = 0; i < kWindow; ++i) OnEvent(&s, busy, Event::kRefill);
    const uint32_t now = s.classes[idle].limit;
    if (now != expected) {
      EXPECT_EQ(now, std::max(FloorLimit(idle), expected / 2));
      ++scans_with_shrink;
      expected = now;
    }
  }
  EXPECT_EQ(s.classes[idle].limit, FloorLimit(idle));
  EXPECT_EQ(FloorLimit(idle), 1u);
  EXPECT_GE(scans_with_shrink, 4);
  EXPECT_EQ(s.used, SumOfLimits(s));
  const std::vector<int> trims = Trims(&s);
  ASSERT_EQ(trims.size(), 1u) << "its list is told to give back";
  EXPECT_EQ(trims[0], idle);
  EXPECT_GE(s.classes[busy].limit, DefaultLimit(busy)) << "the busy class was never cut";
  if (DefaultLimit(busy) < kMaxLimit) EXPECT_GT(s.classes[busy].limit, DefaultLimit(busy));
}

TEST(AceTest, AClassWithEventsEveryWindowIsNotShrunk) {
  State s = Fresh(4096 * kKiB);
  for (int i = 0; i < 6; ++i) OnEvent(&s, 60, Event::kRefill);
  const uint32_t grown = s.classes[60].limit;
  for (int round = 0; round < 20 * static_cast<int>(kWindow); ++round) {
    OnEvent(&s, round % 100 == 0 ? 60 : 5, Event::kRefill);
  }
  EXPECT_GE(s.classes[60].limit, grown);
}

// Sixty classes with events at the same rate: none is ever taken for idle (the
// window grows with the classes in use: with a fixed 256 events, a class would
// see no event in a window 1.4% of the time).
TEST(AceTest, ClassesAtTheAverageRateOfManyAreNotIdle) {
  State s = Fresh(uint64_t{1} << 30);  // room for every limit: no steal
  std::mt19937 rng(7);
  std::vector<uint32_t> high(60, 0);
  for (int i = 0; i < 100000; ++i) {
    const int cls = static_cast<int>(rng() % 60);
    OnEvent(&s, cls, Event::kRefill);
    for (int c = 0; c < 60; ++c) {
      ASSERT_GE(s.classes[c].limit, high[c]) << "class " << c << " shrank at event " << i;
      high[c] = s.classes[c].limit;
    }
  }
  EXPECT_EQ(WindowOf(s), 60 * kWindowPerClass);
}

// Random events over a range of classes whose floors fit the budget: the limits
// never sum past it, and `used` is always their sum.
TEST(AceTest, TheBudgetIsNeverExceeded) {
  for (uint64_t budget : {uint64_t{600} * kKiB, uint64_t{1024} * kKiB, uint64_t{3000} * kKiB}) {
    State s = Fresh(budget);
    std::mt19937 rng(static_cast<uint32_t>(budget));
    // Skewed: a few classes get most events, the rest some, and phases move the hot spot.
    for (int i = 0; i < 200000; ++i) {
      const int phase = i / 20000;
      const int hot = 32 + (phase * 7) % 28;
      const int cls =
          rng() % 4 != 0 ? hot + static_cast<int>(rng() % 3) : 32 + static_cast<int>(rng() % 30);
      const Decision d = OnEvent(&s, cls, Event::kRefill);
      ASSERT_EQ(s.used, SumOfLimits(s)) << "event " << i;
      ASSERT_LE(s.used, budget) << "event " << i << " class " << cls;
      ASSERT_GE(d.limit, FloorLimit(cls));
      ASSERT_LE(d.limit, CapLimit(s, cls));
      ASSERT_EQ(d.batch, BatchFor(d.limit));
    }
  }
}

TEST(AceTest, AFullBudgetMakesTheColdestClassGiveFirst) {
  // Two classes fill the budget at their fixed limits (256 KiB each).
  State s = Fresh(512 * kKiB);
  const int colder = SizeClass(4096);  // fixed limit 64
  const int warm = SizeClass(2048);    // fixed limit 128
  const int hot = SizeClass(8192);     // fixed limit 32
  OnEvent(&s, colder, Event::kRefill);
  OnEvent(&s, warm, Event::kRefill);
  OnEvent(&s, warm, Event::kRefill);  // not grown (the budget is full), but twice the events
  ASSERT_EQ(s.classes[colder].limit, DefaultLimit(colder));
  ASSERT_EQ(s.classes[warm].limit, DefaultLimit(warm));
  ASSERT_EQ(s.used, s.budget);
  // The hot class starts at its floor (nothing is idle or cold enough yet)...
  OnEvent(&s, hot, Event::kRefill);
  EXPECT_EQ(s.classes[hot].limit, FloorLimit(hot));
  // ...and grows by taking from the colder class first: fewer events per byte.
  uint32_t hot_limit = s.classes[hot].limit;
  for (int i = 0; i < 8; ++i) {
    OnEvent(&s, hot, Event::kRefill);
    ASSERT_GE(s.classes[hot].limit, hot_limit);
    hot_limit = s.classes[hot].limit;
  }
  EXPECT_GT(hot_limit, FloorLimit(hot));
  EXPECT_LT(s.classes[colder].limit, DefaultLimit(colder)) << "the colder class gave";
  EXPECT_EQ(s.classes[warm].limit, DefaultLimit(warm)) << "the warmer class kept its limit";
  EXPECT_LE(s.used, s.budget);
  EXPECT_EQ(s.used, SumOfLimits(s));
  const std::vector<int> trims = Trims(&s);
  ASSERT_EQ(trims.size(), 1u);
  EXPECT_EQ(trims[0], colder);
}

TEST(AceTest, IdleClassesGiveBeforeBusyOnes) {
  State s = Fresh(1024 * kKiB);
  const int idle = 40, busy = 41, hot = 56;  // 2304, 2560 and 9216 bytes
  OnEvent(&s, idle, Event::kRefill);         // about 256 KiB each at their fixed limits
  OnEvent(&s, busy, Event::kRefill);
  // A window of events of a small class (32 KiB at most): `idle` falls idle...
  for (uint32_t i = 0; i < kWindow; ++i) OnEvent(&s, 0, Event::kRefill);
  OnEvent(&s, busy, Event::kRefill);  // ...`busy` does not (and grows)
  const uint32_t idle_limit = s.classes[idle].limit;
  const uint32_t busy_limit = s.classes[busy].limit;
  ASSERT_EQ(idle_limit, DefaultLimit(idle)) << "no scan has found it idle yet";
  // The hot class fills the budget...
  for (int i = 0; i < 40 && s.used + Bytes(hot, 1) <= s.budget; ++i)
    OnEvent(&s, hot, Event::kRefill);
  ASSERT_GT(s.used + Bytes(hot, 1), s.budget);
  EXPECT_EQ(s.classes[idle].limit, idle_limit);
  // ...then grows by taking from the idle class only.
  const uint32_t hot_limit = s.classes[hot].limit;
  for (int i = 0; i < 4; ++i) OnEvent(&s, hot, Event::kRefill);
  EXPECT_GT(s.classes[hot].limit, hot_limit);
  EXPECT_LT(s.classes[idle].limit, idle_limit);
  EXPECT_EQ(s.classes[busy].limit, busy_limit);
  EXPECT_LE(s.used, s.budget);
  EXPECT_EQ(s.used, SumOfLimits(s));
}

TEST(AceTest, ARunOfFlushesShedsTheLimitToTheFloorAndARefillEndsIt) {
  State s = Fresh(4096 * kKiB);
  const int cls = SizeClass(256);
  // The first flushes of a run grow the limit as refills would.
  uint32_t limit = OnEvent(&s, cls, Event::kFlush).limit;
  for (uint32_t i = 1; i < kShedAfter; ++i) {
    const Decision d = OnEvent(&s, cls, Event::kFlush);
    ASSERT_EQ(d.limit, limit + limit / 2) << "flush " << i + 1 << " of the run still grows";
    EXPECT_EQ(d.batch, d.limit / 2);
    limit = d.limit;
  }
  EXPECT_TRUE(Trims(&s).empty());
  // The next ones halve it, down to the floor, and give the whole list back.
  const uint32_t clock = s.clock;
  while (limit > FloorLimit(cls)) {
    const Decision d = OnEvent(&s, cls, Event::kFlush);
    ASSERT_EQ(d.limit, std::max(limit / 2, FloorLimit(cls)));
    EXPECT_EQ(d.batch, kMaxLimit) << "a shed empties the list";
    EXPECT_EQ(Trims(&s), std::vector<int>{cls}) << "the list gives back what it holds beyond it";
    EXPECT_EQ(s.used, SumOfLimits(s));
    limit = d.limit;
  }
  const Decision at_floor = OnEvent(&s, cls, Event::kFlush);
  EXPECT_EQ(at_floor.limit, FloorLimit(cls));
  EXPECT_EQ(at_floor.batch, kMaxLimit);
  EXPECT_TRUE(Trims(&s).empty());
  EXPECT_EQ(s.clock, clock) << "sheds are not events of the clock";
  // A refill ends the run: the class grows again, and sheds only after another
  // kShedAfter flushes in a row.
  const Decision refill = OnEvent(&s, cls, Event::kRefill);
  EXPECT_EQ(refill.limit, limit + limit / 2);
  limit = refill.limit;
  for (uint32_t i = 0; i < kShedAfter; ++i) limit = OnEvent(&s, cls, Event::kFlush).limit;
  EXPECT_GT(limit, refill.limit);
  EXPECT_LT(OnEvent(&s, cls, Event::kFlush).limit, limit);
}

TEST(AceTest, FlushesBetweenRefillsNeverShed) {
  // A class that is freed and taken back in turns (bursts of frees that overflow
  // the list, then of mallocs that empty it) keeps growing to its cap.
  State s = Fresh(4096 * kKiB);
  const int cls = SizeClass(512);
  uint32_t limit = 0;
  for (int round = 0; round < 40; ++round) {
    for (uint32_t i = 0; i < kShedAfter; ++i) {
      const uint32_t next = OnEvent(&s, cls, Event::kFlush).limit;
      ASSERT_GE(next, limit) << "round " << round;
      limit = next;
    }
    limit = OnEvent(&s, cls, Event::kRefill).limit;
  }
  EXPECT_EQ(limit, CapLimit(s, cls));
}

TEST(AceTest, TrimsAreTakenPerRange) {
  State s{};
  s.trims[0] = (uint64_t{1} << 3) | (uint64_t{1} << 40);
  s.trims[1] = uint64_t{1} << (70 - 64);
  EXPECT_TRUE(HasTrims(s));
  EXPECT_EQ(TakeTrim(&s, 32, 56), 40);
  EXPECT_EQ(TakeTrim(&s, 32, 56), 70);
  EXPECT_EQ(TakeTrim(&s, 32, 56), -1);
  EXPECT_TRUE(HasTrims(s)) << "class 3 is the tiny caches'";
  EXPECT_EQ(TakeTrim(&s, 0, 32), 3);
  EXPECT_FALSE(HasTrims(s));
}

TEST(AceTest, ABudgetBelowTheFloorsKeepsTheFloors) {
  State s = Fresh(0);
  for (int cls : {3, 40, 72, 87}) {
    EXPECT_EQ(OnEvent(&s, cls, Event::kRefill).limit, FloorLimit(cls));
    EXPECT_EQ(OnEvent(&s, cls, Event::kRefill).limit, FloorLimit(cls))
        << "no growth without budget";
  }
}

}  // namespace
}  // namespace hakmem::ace
