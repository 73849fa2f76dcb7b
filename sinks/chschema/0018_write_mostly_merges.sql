-- change_log and the raw mirror are written with every event and read by no
-- report (only by analysts, with FINAL). With the default merge selector
-- (base 5) background merges rewrote their rows again and again while a
-- backlog drained: a quarter of the transformer process's CPU went to
-- merges. Base 20 merges wider and less often, so each row is rewritten
-- fewer times, for up to a few times more active parts between merges
-- (parts_to_delay_insert is 1000). BenchmarkDrain at 400k orders: 29.1 and
-- 29.7 µs of CPU per fact row before, 24.8 and 25.5 after. The facts keep the
-- default: the reports read them with FINAL, whose cost grows with the parts.
ALTER TABLE change_log MODIFY SETTING merge_selector_base = 20;
ALTER TABLE raw_orders MODIFY SETTING merge_selector_base = 20;
ALTER TABLE raw_order_items MODIFY SETTING merge_selector_base = 20;
ALTER TABLE raw_customers MODIFY SETTING merge_selector_base = 20;
ALTER TABLE raw_products MODIFY SETTING merge_selector_base = 20;
ALTER TABLE raw_campaigns MODIFY SETTING merge_selector_base = 20
