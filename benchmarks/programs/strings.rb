# String churn: SIZE records built by interpolation, split, gsub'd, frozen into
# symbols' keys, grouped in hashes and joined again; most strings die young, a
# tenth stay live to the end. Prints counts and a checksum only.
size = (ARGV[0] || 200000).to_i
seed = 42
rnd = lambda { seed = (seed * 1103515245 + 12345) % 2147483648; seed >> 16 }
words = %w[alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu]

kept = []
groups = Hash.new { |h, k| h[k] = [] }
check = 0
size.times do |i|
  parts = Array.new(3 + rnd.call % 6) { words[rnd.call % words.size] * (1 + rnd.call % 3) }
  record = "#{i}:#{parts.join('-')}:#{rnd.call}"
  fields = record.split(":")
  body = fields[1].gsub(/a+/) { |m| m.upcase }.tr("e", "E")
  key = body[0, 5]
  groups[key] << fields[0].to_i if i % 3 == 0
  kept << body.dup if i % 10 == 0
  check = (check * 31 + body.length + body.count("A")) % 1_000_000_007
end
summary = groups.sort_by { |k, v| [-v.size, k] }.first(20).map { |k, v| "#{k}=#{v.size}" }
joined = kept.each_slice(100).map { |slice| slice.join(",") }
puts "records #{size} groups #{groups.size} kept #{kept.size} joined #{joined.sum(&:length)} check #{check}"
puts summary.join(" ")
