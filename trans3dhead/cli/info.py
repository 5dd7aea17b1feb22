"""`trans3dhead info [--model NAME_OR_FILE] [--json]`: the model card of a model.

What the weights file records (architecture, size, input spec, training config, code commit,
crop counts, exclusion lists) merged with the card shipped for a named model
(assets/model_cards.json: label sources, AFLW2000-3D figures recorded when it was made, licence).
"""
from __future__ import annotations

import json

from trans3dhead.cli.common import MODEL_NAMES


def model_card(name_or_path: str | None) -> dict:
    from importlib import resources

    from trans3dhead.weights import DEFAULT_MODEL, NAMED_ONNX, NAMED_WEIGHTS, read_weights, resolve_weights

    name = name_or_path or DEFAULT_MODEL
    path = resolve_weights(name)
    payload = read_weights(path)
    prov = payload.get("provenance", {})
    params = sum(v.numel() for v in payload["state_dict"].values())
    config = prov.get("config")
    card = {"model": name, "file": str(path), "size_mb": round(path.stat().st_size / 1e6, 2), "arch": payload["arch"],
            "parameters": int(params), "model_config": payload["model_config"], "input": payload.get("input"),
            "landmark_frame": payload.get("landmark_frame"), "training_config": config,
            "code_commit": prov.get("code_commit"), "data": prov.get("data"),
            "epoch": prov.get("epoch"), "checkpoint": prov.get("checkpoint"),
            "visibility": prov.get("visibility_fit"), "face_score": prov.get("face_score_fit")}
    if name in NAMED_WEIGHTS:
        card["onnx_export_shipped"] = NAMED_ONNX.get(name)
        shipped = json.loads(resources.files("trans3dhead.assets").joinpath("model_cards.json").read_text())
        for key, value in shipped.get(name, {}).items():
            if card.get(key) is None:
                card[key] = value
    else:
        card.setdefault("licence", prov.get("licence"))
    if config is not None and card.get("label_sources") is None:
        data = config.get("data", {})
        sources = [f"teacher: {data.get('teacher')}"]
        if data.get("merl_rav_root") and config.get("loss", {}).get("human_landmark"):
            sources.append(f"human: MERL-RAV (weight {config['loss']['human_landmark']})")
        card["label_sources"] = sources
    return card


def _print_card(card: dict) -> None:
    print(f"model: {card['model']}  ({card['arch']}, {card['parameters'] / 1e6:.2f} M parameters, "
          f"{card['size_mb']} MB)  {card['file']}")
    if card.get("summary"):
        print(f"  {card['summary']}")
    inp = card.get("input") or {}
    print(f"input: {inp.get('crop_size')}x{inp.get('crop_size')} {inp.get('channels')} crop, "
          f"{inp.get('normalisation')}")
    for key in ("trained_by", "code_commit", "human_labels"):
        if card.get(key) is not None:
            print(f"{key.replace('_', ' ')}: {card[key]}")
    if card.get("label_sources"):
        print("labels: " + "; ".join(card["label_sources"]))
    data = card.get("data")
    if data:
        print(f"data: {data.get('train_crops')} training crops, {data.get('val_crops')} validation crops")
        for ex in data.get("exclusions") or []:
            print(f"  excluded: {ex['file']} ({ex['count']} crops, sha256 {ex['sha256']})")
        if not data.get("exclusions"):
            print("  excluded: none" + (f" ({data['note']})" if data.get("note") else ""))
    vis = card.get("visibility")
    if vis:
        rep = vis.get("val_report", {})
        print(f"visibility: head (hidden {vis['config']['hidden']}) fitted on {vis['train_crops']} MERL-RAV-labelled "
              f"crops x {vis['config']['views']} views; validation ({vis['val_crops']} crops): visible AUC "
              f"{rep.get('visible_auc', float('nan')):.3f}, self-occluded AUC "
              f"{rep.get('self_occluded', {}).get('auc', float('nan')):.3f}, occluded AUC "
              f"{rep.get('occluded', {}).get('auc', float('nan')):.3f}")
    elif card["arch"] == "trans3dhead":
        print("visibility: none (fit a head with `trans3dhead train-visibility`)")
    fs = card.get("face_score")
    if fs:
        rep = fs.get("report", {})
        aucs = ", ".join(f"{name} {r['auc']:.4f}" for name, r in rep.items() if r.get("auc") is not None)
        animals = (f", {fs['animal_crops']} crops of animal faces ({', '.join(fs['animals_fitted'])})"
                   if fs.get("animal_crops") else "")
        print(f"face score: head fitted on {fs['faces']} faces, {fs['shifted']} crops off the face, "
              f"{fs['non_face_crops']} non-face crops{animals}; held-out AUC against validation faces: {aucs}")
    elif card["arch"] == "trans3dhead":
        print("face score: none (quality from the branch agreement; fit a head with `trans3dhead train-face-score`)")
    fig = card.get("aflw2000_3d")
    if fig:
        pkg, ddfa = fig.get("package_protocol", {}), fig.get("3ddfa_protocol", {})
        def three(x):
            return "?" if x is None else f"{x:.3f}"

        print(f"AFLW2000-3D ({fig.get('crops')}): NME mean of bins {three(pkg.get('nme_mean_of_bins'))} (package frame), "
              f"{three(ddfa.get('nme_mean_of_bins'))} (3DDFA protocol); pose MAE {three(fig.get('pose_mae_deg'))} deg")
    if card.get("licence"):
        print(f"licence: {card['licence']}")


def cmd_info(args) -> int:
    card = model_card(args.model)
    if args.json:
        print(json.dumps(card, default=str))
    else:
        _print_card(card)
    return 0


def register(sub) -> None:
    p = sub.add_parser("info", help="the model card of a model (architecture, training data, figures, licence)")
    p.add_argument("--model", default=None, help=f"named model ({MODEL_NAMES}) or weights file (default: trans3dhead)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_info)
