"""CsvDataset: the FLYP / R-Adapter TAB-separated CSV."""

from __future__ import annotations

import pytest
from tiny_images import write_image

from radapter.data import CorruptImageError, CsvDataset, DatasetLayoutError


@pytest.fixture
def image_dir(tmp_path):
    for i in range(4):
        write_image(tmp_path / "images" / f"{i}.png", color=(i * 60, 0, 0))
    return tmp_path


def test_default_flyp_csv(image_dir):
    csv = image_dir / "train.csv"
    csv.write_text(
        "filepath\ttitle\tclass\n"
        "images/0.png\ta photo of a cat.\t1\n"
        f"{image_dir / 'images' / '1.png'}\ta photo of a dog.\t0\n"  # absolute paths are kept
        'images/2.png\t"a photo of a ""fancy"" cat."\t1\n'  # pandas-style quoting
    )
    ds = CsvDataset(csv, classnames=["dog", "cat"])
    assert ds.targets == [1, 0, 1]
    assert ds.captions == ["a photo of a cat.", "a photo of a dog.", 'a photo of a "fancy" cat.']
    assert ds.samples[0][0] == str(image_dir / "images" / "0.png")  # relative to the CSV's folder
    assert ds.samples[1][0] == str(image_dir / "images" / "1.png")
    assert ds.classnames == ["dog", "cat"]
    image, label = ds[2]
    assert image.mode == "RGB" and label == 1
    assert image.getpixel((0, 0)) == (120, 0, 0)


def test_custom_headers_separator_and_root(image_dir, tmp_path):
    elsewhere = tmp_path / "lists"
    elsewhere.mkdir()
    csv = elsewhere / "val.csv"
    csv.write_text("label,path,caption,extra\n0,images/3.png,three,x\n2,images/0.png,zero,y\n")
    ds = CsvDataset(csv, sep=",", img_key="path", caption_key="caption", label_key="label", root=image_dir)
    assert ds.samples == [(str(image_dir / "images" / "3.png"), 0), (str(image_dir / "images" / "0.png"), 2)]
    assert ds.captions == ["three", "zero"]
    assert ds.classnames is None  # integer labels name no classes unless classnames are given


def test_missing_column_names_file_column_and_columns_found(image_dir):
    csv = image_dir / "bad.csv"
    csv.write_text("filepath\tcaption\tclass\nimages/0.png\tx\t0\n")
    with pytest.raises(DatasetLayoutError) as info:
        CsvDataset(csv)
    text = str(info.value)
    assert str(csv) in text
    assert "missing caption column 'title'" in text
    assert "columns found: ['filepath', 'caption', 'class']" in text
    assert "expected layout" in text and "filepath<TAB>title<TAB>class" in text


def test_wrong_separator_gets_a_hint(image_dir):
    csv = image_dir / "commas.csv"
    csv.write_text("filepath,title,class\nimages/0.png,x,0\n")
    with pytest.raises(DatasetLayoutError, match="is the separator right"):
        CsvDataset(csv)


def test_class_names_in_label_column(image_dir):
    csv = image_dir / "named.csv"
    csv.write_text("filepath\ttitle\tclass\nimages/0.png\tt\tzebra\nimages/1.png\tt\tant\nimages/2.png\tt\tzebra\n")
    ds = CsvDataset(csv)
    assert ds.classnames == ["ant", "zebra"] and ds.targets == [1, 0, 1]
    head = CsvDataset(csv, classnames=["Zebra", "bee", "Ant"])  # matched ignoring case
    assert head.targets == [0, 2, 0]
    with pytest.raises(DatasetLayoutError, match="not among the 2 given classes: ant"):
        CsvDataset(csv, classnames=["zebra", "bee"])


def test_integer_labels_out_of_range_are_named(image_dir):
    csv = image_dir / "range.csv"
    csv.write_text("filepath\ttitle\tclass\nimages/0.png\tt\t0\nimages/1.png\tt\t5\n")
    with pytest.raises(DatasetLayoutError, match=r"\[0, 3\).*\(3, 5\)"):
        CsvDataset(csv, classnames=["a", "b", "c"])


def test_missing_or_empty_file(tmp_path):
    with pytest.raises(DatasetLayoutError, match="CSV file not found"):
        CsvDataset(tmp_path / "none.csv")
    (tmp_path / "empty.csv").write_text("\n\n")
    with pytest.raises(DatasetLayoutError, match="empty"):
        CsvDataset(tmp_path / "empty.csv")


def test_corrupt_and_missing_images_raise_or_are_skipped_with_captions_aligned(image_dir):
    (image_dir / "images" / "bad.jpg").write_bytes(b"junk")
    csv = image_dir / "c.csv"
    csv.write_text(
        "filepath\ttitle\tclass\n"
        "images/0.png\tzero\t0\nimages/bad.jpg\tbad\t1\nimages/gone.png\tgone\t1\nimages/3.png\tthree\t1\n"
    )
    strict = CsvDataset(csv)
    with pytest.raises(CorruptImageError, match="bad.jpg"):
        strict[1]
    with pytest.raises(CorruptImageError, match="gone.png.*file not found"):
        strict[2]
    skipping = CsvDataset(csv, skip_corrupt=True, progress=False)
    assert skipping.captions == ["zero", "three"] and skipping.targets == [0, 1]
    assert len(skipping.skipped) == 2 and "skipped 2 corrupt images" in str(skipping.skipped)


def test_every_row_exposes_its_caption_and_an_empty_caption_is_none(image_dir):
    csv = image_dir / "caps.csv"
    csv.write_text(
        "filepath\ttitle\tclass\n"
        "images/0.png\t  a photo of a cat.  \t1\nimages/1.png\t\t0\nimages/2.png\t   \t1\nimages/3.png\ta dog.\t0\n"
    )
    ds = CsvDataset(csv, classnames=["dog", "cat"])
    assert ds.captions == ["a photo of a cat.", None, None, "a dog."]
    assert [ds.caption(i) for i in range(len(ds))] == ds.captions
    assert ds.has_captions
    # Without a caption column every row has no caption; the list is still there, aligned with the samples.
    no_caps = CsvDataset(csv, caption_key=None, classnames=["dog", "cat"])
    assert no_caps.captions == [None] * 4 and no_caps.caption(2) is None and not no_caps.has_captions


def test_captions_stay_aligned_through_subsets_and_relabelling(image_dir):
    csv = image_dir / "caps.csv"
    csv.write_text("filepath\ttitle\tclass\nimages/0.png\tzero\t0\nimages/1.png\tone\t1\nimages/2.png\ttwo\t0\n")
    ds = CsvDataset(csv, classnames=["a", "b"])
    ds.relabel([1, 0], ["b", "a"])
    assert ds.captions == ["zero", "one", "two"] and ds.targets == [1, 0, 1]
    with pytest.raises(IndexError, match="caption 3 of 3 rows"):
        ds.caption(3)


def test_a_byte_order_mark_does_not_hide_the_first_column(image_dir):
    csv = image_dir / "bom.csv"
    csv.write_bytes("\ufefffilepath\ttitle\tclass\nimages/0.png\tzero\t0\n".encode())
    assert CsvDataset(csv).targets == [0]


def test_mixed_integer_and_name_labels_are_refused(image_dir):
    # "3" among names would silently become a class called "3" next to "cat".
    csv = image_dir / "mixed.csv"
    csv.write_text("filepath\ttitle\tclass\nimages/0.png\tt\tcat\nimages/1.png\tt\t3\nimages/2.png\tt\tdog\n")
    with pytest.raises(DatasetLayoutError, match=r"mixes integer labels \(3\) and class names \(cat, dog\)"):
        CsvDataset(csv)


def test_an_empty_label_is_refused_not_made_a_class(image_dir):
    csv = image_dir / "empty_label.csv"
    csv.write_text("filepath\ttitle\tclass\nimages/0.png\tt\tcat\nimages/1.png\tt\t\nimages/2.png\tt\tdog\n")
    with pytest.raises(DatasetLayoutError, match=r"rows with an empty 'class' label: 3"):
        CsvDataset(csv)


def test_paths_resolved_against_the_wrong_root_are_reported_at_once(image_dir, tmp_path):
    lists = tmp_path / "lists"
    lists.mkdir()
    csv = lists / "train.csv"
    csv.write_text("filepath\ttitle\tclass\nimages/0.png\tt\t0\nimages/1.png\tt\t1\n")
    with pytest.raises(DatasetLayoutError, match=r"none of the first 2 image files exist.*images/0.png.*root"):
        CsvDataset(csv)
    assert len(CsvDataset(csv, root=image_dir)) == 2


def test_a_name_table_is_refused_as_csv_classnames(image_dir):
    # list({wnid: name}) is the wnids: the head would have been named "n01440764", ... without a word.
    csv = image_dir / "train.csv"
    csv.write_text("filepath\ttitle\tclass\nimages/0.png\tt\t0\n")
    with pytest.raises(TypeError, match="list of class names in label order.*got a dict"):
        CsvDataset(csv, classnames={"n01440764": "tench"})
