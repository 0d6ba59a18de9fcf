# Plots bench/out/offload.dat (written by report.py):
#   gnuplot -e "datafile='...'; outfile='...'" offload.gp
set terminal pngcairo size 1000,420 font ",10"
set output outfile
set multiplot layout 1,2 title "offload\\_server: /ping latency while /work keeps the workers busy"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set grid ytics
set key top left

set title "/ping latency (log scale)"
set ylabel "ms"
set logscale y
set yrange [0.01:*]
plot datafile using 2:xtic(1) title "p50", \
     '' using 3 title "p99", \
     '' using 0:2:(sprintf("%.2f", $2)) with labels offset -2.5,0.6 notitle, \
     '' using 0:3:(sprintf("%.2f", $3)) with labels offset 2.5,0.6 notitle

set title "/work throughput"
set ylabel "requests/s"
unset logscale y
set yrange [0:*]
# Modes without /work (idle) are left out of this panel.
plot datafile using ($4 > 0 ? $4 : NaN):xtic(1) title "/work req/s" lc rgb "#44aa77", \
     '' using 0:($4 > 0 ? $4 : NaN):(sprintf("%.1f", $4)) with labels offset 0,0.6 notitle
unset multiplot
