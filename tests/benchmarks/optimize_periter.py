"""Seconds per L-BFGS iteration at 512 px: fastnst optimize vs pastiche, interleaved in one run.

Same photo, style, layers, weights and optimizer settings as optimize_vs_pastiche.py; 8
iterations each, two rounds, medians of per-iteration times (the first iterations skipped).

    python tests/benchmarks/optimize_periter.py
"""
import statistics, subprocess, sys, tempfile
from pathlib import Path
from fastnst.config import OptimizeConfig
from fastnst.play.images import load_image
from fastnst.learn.optimize import optimize, build_encoder
DATA = Path(__file__).resolve().parents[3] / 'shared' / 'data'
C, S = str(DATA / 'content' / 'n03877845_palace.jpg'), str(DATA / 'styles' / 'scream.jpg')
cfg=OptimizeConfig(scales=(512,), iterations=(8,), device='cpu'); enc=build_encoder(cfg)
c,s=load_image(C),load_image(S)
for rep in range(2):
    out=subprocess.run([sys.executable,'-m','pastiche','--size','512','--style-size','512','--num-steps','8','--info-step','1','--seed','0','-c',C,'-s',S,'-o',str(Path(tempfile.gettempdir()) / 'pastiche_p8.png')],capture_output=True,text=True,cwd='/').stdout
    el=[float(l.split()[1]) for l in out.splitlines() if len(l.split())==3 and l.split()[0].isdigit()]
    p=statistics.median([b-a for a,b in zip(el[2:],el[3:])])
    h=optimize(c,[s],cfg,progress=False,encoder=enc).history
    f=statistics.median([b[2]-a[2] for a,b in zip(h[1:],h[2:])])
    print(f"rep {rep}: pastiche {p:.3f} s/it, fastnst {f:.3f} s/it, ratio {f/p:.2f}", flush=True)
