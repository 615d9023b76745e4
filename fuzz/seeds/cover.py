#!/usr/bin/env python3
"""Keeps at most N corpus files covering the most edges (greedy set cover), as the committed
corpora were cut. Input: a libFuzzer merge control file, made by
`target/x86_64-unknown-linux-gnu/release/<target> -merge=1 -use_counters=0 -use_cmp=0
 -merge_control_file=CTL EMPTY_DIR DIR`. Usage: cover.py CTL OUT_DIR N."""
import os, shutil, sys
ctl, out, lim = sys.argv[1], sys.argv[2], int(sys.argv[3])
lines=open(ctl).read().split("\n"); n=int(lines[0]); files=lines[2:2+n]
feats={}
for l in lines[2+n:]:
    p=l.split()
    if p and p[0]=="FT": feats[int(p[1])]=set(p[2:])
U=set().union(*feats.values()); cov=set(); chosen=[]
while len(chosen)<lim and cov!=U:
    b=max(feats,key=lambda i:(len(feats[i]-cov), -os.path.getsize(files[i]))); cov|=feats[b]; chosen.append(b)
os.makedirs(out, exist_ok=True)
for i in chosen: shutil.copy(files[i], out)
print(len(chosen), "files,", len(cov), "of", len(U), "edge features")
