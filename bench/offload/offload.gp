# Plots bench/out/offload.dat and bench/out/shootout.dat (report.py's):
#   gnuplot -e "datafile='...'; shootfile='...'; outfile='...'" offload.gp
# Top row, when datafile is not '': /ping while /work keeps the workers
# busy (ppx, --inline, idle). Bottom row, when shootfile is not '': the
# scrypt shootout, per server, /ping under /hash saturation, /hash
# throughput and the peak RSS of the server's process tree. Missing
# figures (-1) are labelled "missing".
if (!exists("datafile")) datafile = ''
if (!exists("shootfile")) shootfile = ''
rows = (strlen(datafile) > 0) + (strlen(shootfile) > 0)
# Room for the overall title above the panels; names like node_piscina
# printed as they are (no subscripts).
h = 0.94 / rows
set terminal pngcairo size 1300,(rows * 440) font ",10" noenhanced
set output outfile
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set grid ytics
set key top left
set xtics scale 0
pos(v) = v > 0 ? v : NaN
set multiplot title "offload_server: /ping latency while CPU jobs keep every worker busy"

if (strlen(datafile) > 0) {
set size 0.5, h
set origin 0, 0.94 - h
set title "/work: /ping latency (log scale)"
set ylabel "ms"
set logscale y
set yrange [0.01:*]
plot datafile using 2:xtic(1) title "p50", \
     '' using 3 title "p99", \
     '' using 0:2:(sprintf("%.2f", $2)) with labels offset -2.5,0.6 notitle, \
     '' using 0:3:(sprintf("%.2f", $3)) with labels offset 2.5,0.6 notitle

set origin 0.5, 0.94 - h
set title "/work throughput"
set ylabel "requests/s"
unset logscale y
set yrange [0:*]
# Modes without /work (idle) are left out of this panel.
plot datafile using (pos($4)):xtic(1) title "/work req/s" lc rgb "#44aa77", \
     '' using 0:(pos($4)):(sprintf("%.1f", $4)) with labels offset 0,0.6 notitle
}

if (strlen(shootfile) > 0) {
    set xtics rotate by -20
    set key above
    set offsets 0, 0, graph 0.08, 0
    set size 1.0 / 3, h
    set origin 0, 0
    set title "scrypt shootout: /ping under /hash saturation (log scale)"
    set ylabel "ms"
    set logscale y
    set yrange [0.01:*]
    plot shootfile using (pos($2)):xtic(1) title "p50", \
         '' using (pos($3)) title "p99", \
         '' using ($0 - 0.2):(pos($2)):(sprintf("%.2f", $2)) with labels offset 0,0.6 notitle, \
         '' using ($0 + 0.2):(pos($3)):(sprintf("%.2f", $3)) with labels offset 0,0.6 notitle, \
         '' using 0:($2 < 0 ? 0.02 : NaN):("missing") with labels notitle

    set origin 1.0 / 3, 0
    set title "/hash throughput (N=16384 r=8 p=1)"
    set ylabel "requests/s"
    unset logscale y
    set yrange [0:*]
    plot shootfile using (pos($4)):xtic(1) title "/hash req/s" lc rgb "#44aa77", \
         '' using 0:(pos($4)):(sprintf("%.1f", $4)) with labels offset 0,0.6 notitle, \
         '' using 0:($4 < 0 ? 0 : NaN):("missing") with labels offset 0,0.6 notitle

    set origin 2.0 / 3, 0
    set title "peak RSS of the process tree"
    set ylabel "MiB"
    plot shootfile using (pos($5)):xtic(1) title "VmRSS summed" lc rgb "#aa6644", \
         '' using 0:(pos($5)):(sprintf("%.0f", $5)) with labels offset 0,0.6 notitle, \
         '' using 0:($5 < 0 ? 0 : NaN):("missing") with labels offset 0,0.6 notitle
}
unset multiplot
